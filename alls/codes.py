"""Every diagnostic code, documented: what, why, an example, the fix.

`alls explain CODE` prints these. Codes are stable: 0xx the tool itself,
1xx syntax, 2xx names and selectors, 3xx values and plan, 4xx the model,
5xx the runtime (data, calibration, quantized files).
"""

from __future__ import annotations

from dataclasses import dataclass

from alls.diagnostics import Severity

__all__ = ["CodeDoc", "CODES", "explain"]


@dataclass(frozen=True)
class CodeDoc:
    code: str
    severity: Severity
    title: str
    what: str
    why: str
    example: str
    fix: str


E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO

_DOCS = [
    CodeDoc("ALS001", E, "a file cannot be read",
            "The path given does not exist, is a directory, or cannot be opened.",
            "There is nothing to check.",
            "alls check missing.alls",
            "Check the path and the file's permissions."),
    CodeDoc("ALS100", E, "syntax error",
            "The parser met a token it did not expect at this point of a statement.",
            "A statement is `[targets =] command(arguments)`; anything else cannot be read.",
            "quantization_param(=conv1)",
            "Write the statement in the form `command(arg, key=value)`; the label says what was expected."),
    CodeDoc("ALS101", E, "unexpected character",
            "A character that is not part of the language, such as `;`, `@` or `$`.",
            "Names are letters, digits, `_`, `-`, `.` and `/`; values are names, numbers, strings, globs and lists.",
            "quantization_param(conv1; precision_mode=a8_w8)",
            "Remove the character, or replace it (`,` between arguments)."),
    CodeDoc("ALS102", E, "unclosed bracket",
            "A `(` or `[` is never closed, so the statement runs into the next one.",
            "Statements may span lines only inside brackets; an open bracket swallows what follows.",
            "quantization_param({conv*}, precision_mode=a16_w16",
            "Add the closing `)` or `]`."),
    CodeDoc("ALS103", E, "unmatched closing bracket",
            "A `)`, `]` or `}` closes nothing.",
            "It usually means a bracket too many, or one opened with the wrong kind.",
            "pre_quantization_optimization(equalization, policy=enabled))",
            "Remove the extra bracket."),
    CodeDoc("ALS104", E, "missing comma",
            "Two arguments or list items follow each other without a `,`.",
            "Arguments and list items are separated by commas.",
            "normalization([0.0 0.0 0.0], [255.0, 255.0, 255.0])",
            "Insert the comma: `[0.0, 0.0, 0.0]`."),
    CodeDoc("ALS105", E, "bad string",
            "A string is never closed on its line, or is written with single quotes.",
            "Strings are double-quoted and stay on one line.",
            "nms_postprocess('config.json', meta_arch=yolov8)",
            'Write `"config.json"`.'),
    CodeDoc("ALS106", E, "curly quote",
            "A typographic quote (“ ” ‘ ’), usually pasted from a document or chat.",
            "Only the straight double quote `\"` delimits strings.",
            "nms_postprocess(“config.json”)",
            'Replace it with `"`.'),
    CodeDoc("ALS107", E, "positional argument after a keyword argument",
            "A value without a name follows a `key=value` argument.",
            "Positional arguments are matched by position, which is lost after a keyword.",
            "quantization_param(precision_mode=a8_w8, conv1)",
            "Put positional arguments first: `quantization_param(conv1, precision_mode=a8_w8)`."),
    CodeDoc("ALS108", E, "invalid UTF-8",
            "The file contains bytes that are not UTF-8 text.",
            "Scripts are UTF-8 text; other encodings cannot be read reliably.",
            "a Latin-1 `é` in a comment",
            "Save the file as UTF-8."),
    CodeDoc("ALS109", E, "NUL byte",
            "The file contains NUL bytes.",
            "A NUL never appears in text: the file is binary, corrupt or UTF-16.",
            "a UTF-16 file",
            "Save the file as UTF-8 text."),
    CodeDoc("ALS110", E, "statement without a call",
            "A line holds a name or an assignment, but no `command(...)`.",
            "Every statement calls a command.",
            "quantization_param",
            "Add the arguments: `quantization_param({conv*}, precision_mode=a8_w8)`."),
    CodeDoc("ALS111", E, "unclosed brace glob",
            "A `{` has no `}` on the same line.",
            "Globs are written `{pattern}` on one line.",
            "quantization_param({conv*, precision_mode=a16_w16)",
            "Close it: `{conv*}`."),
    CodeDoc("ALS201", E, "selector matches no layer",
            "A layer name or glob in the script names no layer of the model.",
            "The setting would silently apply to nothing.",
            "quantization_param({cnv*}, precision_mode=a16_w16)",
            "Use the suggested name or glob; `alls layers MODEL` lists every layer name."),
    CodeDoc("ALS202", E, "unknown command",
            "The command name is not in the catalogue, and it is close to one that is.",
            "A misspelt command would otherwise be ignored, and its setting silently lost.",
            "quantizaton_param({conv*}, precision_mode=a16_w16)",
            "Use the suggested name; `alls check` lists it under help."),
    CodeDoc("ALS203", E, "unknown keyword",
            "A keyword argument that this command (or sub-command) does not take.",
            "An unknown keyword would otherwise be dropped, and the setting it meant lost. On sub-commands "
            "that the emulator does not interpret, whose keywords vary between compiler versions, it is a warning.",
            "quantization_param({conv*}, precison_mode=a16_w16)",
            "Use the suggested keyword, or one of those listed in the help."),
    CodeDoc("ALS204", E, "unknown sub-command",
            "The first argument of an optimization command names no known sub-command.",
            "The optimization commands dispatch on their first argument.",
            "pre_quantization_optimization(equalisation, policy=enabled)",
            "Use the suggested sub-command (here `equalization`)."),
    CodeDoc("ALS205", E, "repeated keyword",
            "The same keyword is given twice in one call.",
            "Only one of the values could win; which one is ambiguous.",
            "quantization_param(conv1, precision_mode=a8_w8, precision_mode=a16_w16)",
            "Keep one of them."),
    CodeDoc("ALS206", E, "missing argument",
            "A required argument is not given.",
            "The command cannot be applied without it.",
            "quantization_param(precision_mode=a16_w16)",
            "Give the argument: `quantization_param({conv*}, precision_mode=a16_w16)`."),
    CodeDoc("ALS207", E, "too many positional arguments",
            "The call has more positional arguments than the command takes.",
            "The extra values have no meaning and would be lost.",
            "quantization_param(conv1, conv2, precision_mode=a8_w8)",
            "Put several layers in a list: `quantization_param([conv1, conv2], ...)`."),
    CodeDoc("ALS208", I, "not applied by the emulator",
            "A compiler or allocator command (or an optimization the emulator does not implement).",
            "These shape how the network is compiled for the device, not its numerics; the check knows them "
            "by name, but `alls quantize` does not apply them.",
            "compilation_param(conv1, resources_allocation_strategy=manual_scs_selection)",
            "Nothing to fix: it is reported once per command and file so that you know."),
    CodeDoc("ALS209", W, "deprecated spelling",
            "An older form of a setting that has a current one.",
            "Old forms still work, but newer tools may drop them.",
            "quantization_param({conv*}, use_16bit_bias=True)",
            "Write the current form shown in the help: `bias_mode=double_scale_initialization`."),
    CodeDoc("ALS210", E, "unexpected assignment target",
            "A command that produces no layer is assigned to a name.",
            "Only commands that add or rename layers (normalization, resize, ...) have targets.",
            "q = quantization_param({conv*}, precision_mode=a8_w8)",
            "Remove `q =`."),
    CodeDoc("ALS211", W, "selector scoped to another network",
            "A scoped name or glob (`yolov5m/conv3`) names another network than the model's.",
            "Scripts are often copied between networks; the layer is matched by its short name.",
            "quantization_param(yolov5m/conv3, precision_mode=a16_w16) on a model called `digits`",
            "Drop the scope (`conv3`) or use the model's own (`digits/conv3`)."),
    CodeDoc("ALS212", W, "unknown command",
            "The command is not in the catalogue and not close to any command that is.",
            "It may be a command of a newer compiler; the emulator ignores it.",
            "my_custom_command(conv1)",
            "Check the spelling; if it is a compiler command, nothing to fix."),
    CodeDoc("ALS213", E, "option cannot apply to the layers selected",
            "A selector reaches layers where the option has no meaning: a bias mode, quantization groups or weights "
            "clipping on a layer without weights (a pool, an elementwise add), a forced input range on an input "
            "layer, a normalization of a layer that is not an input.",
            "The option would be silently dropped for those layers, and the script would not say what it does.",
            "quantization_param({*}, bias_mode=double_scale_initialization) on a network with pools",
            "Narrow the selector to the layers the option applies to (`{conv*}`, `[conv1, fc1]`); the message names "
            "each layer and its kind."),
    CodeDoc("ALS301", E, "value not allowed",
            "An enumerated setting has a value outside its allowed set.",
            "The setting would have no defined meaning.",
            "quantization_param({conv*}, precision_mode=a16_w12)",
            "Use one of the values listed in the help."),
    CodeDoc("ALS302", E, "wrong type",
            "A value of the wrong kind: a name where a number belongs, a float where an integer belongs, a list "
            "where a single value belongs.",
            "The setting cannot be read from it.",
            "model_optimization_config(calibration, batch_size=eight)",
            "Write a value of the expected type (here `batch_size=8`)."),
    CodeDoc("ALS303", E, "value out of range",
            "A number outside its allowed range.",
            "Hailo's compiler rejects it; the emulator could not honour it.",
            "quantization_param({conv*}, quantization_groups=8)",
            "Use a value within the range shown in the help (quantization_groups: 1..4)."),
    CodeDoc("ALS304", E, "bad clipping range",
            "A `[lo, hi]` range with lo >= hi, or percentiles outside 0..100.",
            "An empty range clips everything; a percentile above 100 does not exist.",
            "pre_quantization_optimization(activation_clipping, layers={conv*}, mode=percentile, "
            "clipping_values=[0.01, 100.5])",
            "Write `[lo, hi]` with lo < hi; for percentile modes keep both in 0..100."),
    CodeDoc("ALS305", W, "template placeholder",
            "A brace word such as `{calibset_size}` stands where a number or name belongs.",
            "The script is a template whose placeholders have not been filled in.",
            "model_optimization_config(calibration, calibset_size={calibset_size})",
            "Fill in the placeholder before using the script."),
    CodeDoc("ALS306", E, "inconsistent arguments",
            "Arguments that must agree do not: list lengths differ, or a value needs another argument.",
            "The command cannot pair them up.",
            "post_quantization_optimization(finetune, policy=enabled, loss_layer_names=[conv1, conv2], "
            "loss_types=[l2])",
            "Give every list the same length; give clipping_values when mode is manual or percentile."),
    CodeDoc("ALS307", E, "wrong list length",
            "A list has fewer or more items than the argument takes.",
            "The items could not be matched to what they mean.",
            "pre_quantization_optimization(activation_clipping, layers={*}, mode=manual, clipping_values=[0, 5, 9])",
            "Give the number of items shown in the message."),
    CodeDoc("ALS308", E, "value does not fit the layer",
            "A value that is valid on its own does not fit a layer it reaches: a quantization group count that does "
            "not divide the layer's output channels, a force_range_index past its inputs.",
            "Quantization groups are equal blocks of output channels; an input index must name an input.",
            "quantization_param(conv1, quantization_groups=3) where conv1 has 16 output channels",
            "Choose a divisor of the output channels (`alls layers MODEL` shows them), or an existing input index."),
    CodeDoc("ALS311", W, "4-bit weights without finetune and weights clipping",
            "Some layers get 4-bit weights (from precision_mode=a8_w4, or from compression_level / "
            "auto_4bit_weights_ratio) but finetune (or adaround) or weights clipping is off for them.",
            "Hailo's guide: any network with one or more 4-bit layers must use QFT and weights clipping; rounding "
            "to 15 levels loses too much otherwise.",
            "quantization_param({conv*}, precision_mode=a8_w4) alone",
            "Add `post_quantization_optimization(finetune, policy=enabled)` and "
            "`pre_quantization_optimization(weights_clipping, layers={conv*}, mode=percentile, "
            "clipping_values=[0.01, 99.99])`."),
    CodeDoc("ALS312", W, "16-bit on part of the network",
            "Some tensors are written at one width and read at another: a 16-bit layer feeds an 8-bit concat, "
            "shortcut or elementwise layer, or the reverse.",
            "Hailo's guide: 16-bit must be applied to the whole network. Each boundary requantizes to 8 bits, and "
            "the 16-bit precision is lost there.",
            "quantization_param({conv*}, precision_mode=a16_w16) on a network with residual adds",
            "Apply the mode to every layer (`{*}`), or include the concat, shortcut and elementwise layers, or "
            "accept the boundaries listed."),
    CodeDoc("ALS313", W, "small calibration set",
            "calibset_size is below 32 images.",
            "Ranges calibrated on a few images miss the values of others; outputs then clip.",
            "model_optimization_config(calibration, calibset_size=8)",
            "Calibrate on at least 32 (the default is 64) real, pre-processed images."),
    CodeDoc("ALS314", W, "batch larger than the data",
            "A batch size is above the number of images it is drawn from (calibration, finetune or adaround).",
            "Hailo's FAQ: asking for more images than given stops the run (OutOfRange).",
            "model_optimization_config(calibration, batch_size=128, calibset_size=64)",
            "Make the batch size at most the number of images."),
    CodeDoc("ALS315", W, "MobileNet-like network without equalization and bias correction",
            "The network has depthwise layers, but equalization or bias correction (IBC) is off everywhere.",
            "Hailo's guide: MobileNet-based networks benefit greatly from IBC and equalization; depthwise "
            "channels have very different ranges, and per-tensor weight scales crush the small ones.",
            "model_optimization_flavor(optimization_level=0) on a MobileNetV2 backbone",
            "Use optimization_level=1, or enable `equalization` and `bias_correction` explicitly."),
    CodeDoc("ALS316", W, "detection outputs at 8 bits",
            "Output layers that are spatial maps of a convolution (detection or dense-prediction heads) stay 8-bit.",
            "Hailo's guide: such output branches mix values of different dynamic ranges; 16-bit outputs greatly "
            "reduce their under-representation.",
            "a face detector with heatmap, scale and offset outputs and an empty script",
            "Add `quantization_param({output_layer*}, precision_mode=a16_w16)`."),
    CodeDoc("ALS401", E, "unsupported op",
            "An ONNX node whose op (or whose form of the op) has no layer in the emulator.",
            "The layer is listed by `alls layers` and can be selected, but it cannot be quantized or emulated.",
            "an Einsum node, or a Conv whose weights are computed at run time",
            "Export the model with supported ops (see the README's list), or keep the layer out of the network."),
    CodeDoc("ALS402", E, "model cannot be read",
            "The model file is missing, truncated, or not an ONNX model.",
            "There is no graph to bind the script to.",
            "alls layers model.onnx.part",
            "Check the path; export the model again."),
    CodeDoc("ALS403", W, "opset outside 9..21",
            "The model's ONNX opset is older or newer than the importer knows.",
            "Op semantics change between opsets; some may be read wrongly.",
            "a model exported with opset 7",
            "Convert it with `onnx.version_converter` to an opset between 9 and 21."),
    CodeDoc("ALS404", W, "shape or output not imported",
            "ONNX shape inference failed, or an output is a constant.",
            "Layer shapes then come from the layers alone, which may miss some.",
            "a model with custom-domain ops",
            "Give fixed input shapes (--input-shape) or simplify the model."),
    CodeDoc("ALS405", E, "bad input shape",
            "An --input-shape names no input, has the wrong rank, or an input's size is unknown.",
            "Layer shapes cannot be computed.",
            "alls layers model.onnx --input-shape 1,3,320",
            "Give one full shape per input: `--input-shape 1,3,320,320` or `--input-shape input.1=1,3,320,320`."),
    CodeDoc("ALS501", E, "more images asked for than given",
            "Calibration reads batch_size x calib_num_batch images (by default from the script's calibset_size), "
            "and the data hold fewer.",
            "Hailo's FAQ: run_quantization's OutOfRange error. Calibrating on fewer images than planned would "
            "silently change the ranges.",
            "alls quantize model.onnx --calib 16_images.npy (calibset_size defaults to 64)",
            "Give more images, or lower `calibset_size` / `--batch-size` x `--calib-num-batch`."),
    CodeDoc("ALS502", W, "output branch not activated",
            "An output's calibrated range is near zero: the calibration images never activate it.",
            "Hailo's FAQ (limvals out small range): its scale is meaningless and real inputs will saturate it.",
            "a detector calibrated on images without the objects one of its heads detects",
            "Use a calibration set that represents the real inputs and activates every output branch."),
    CodeDoc("ALS503", E, "NaN or Inf in the data",
            "Some images contain NaN or infinite values.",
            "Ranges and statistics computed from them are meaningless.",
            "images divided by a zero standard deviation",
            "Fix the pre-processing that made the array."),
    CodeDoc("ALS504", E, "constant data",
            "Every value of the calibration data is the same.",
            "Hailo's guide: the calibration set must be real images, not random or blank ones.",
            "np.zeros((64, 224, 224, 3))",
            "Calibrate on real, pre-processed images."),
    CodeDoc("ALS505", E, "wrong shape, layout or dtype",
            "The data do not fit the model's input: another shape, channels in the wrong place, or not numbers.",
            "The model cannot be run on them.",
            "(N, 3, 320, 320) images passed with layout nhwc",
            "Pass (N, H, W, C) arrays (or layout=\"nchw\" for (N, C, H, W)); the help says which the data look like."),
    CodeDoc("ALS506", E, "model and plan do not belong together",
            "A quantized file whose layers are not the model's, or a run that needs a quantized model before one "
            "exists.",
            "Constants of one network applied to another give nonsense.",
            "runner.infer(x, target=\"numeric\") before runner.quantize(calib)",
            "Quantize the model first, and keep the model and its quantized file together."),
    CodeDoc("ALS507", E, "not enough memory",
            "The job's memory estimate exceeds the memory available, so it is refused before it starts.",
            "Hailo's FAQ: heavy jobs on a machine without enough memory are killed midway.",
            "calibrating a large network at batch_size=256",
            "Lower the batch size, or run on a machine with more memory."),
    CodeDoc("ALS508", E, "finetune out of data",
            "Finetune (or adaround) trains on `dataset_size` images, drawn from the images given to quantize, "
            "and fewer were given (finetune's default is 2048).",
            "Hailo's FAQ: run_quantization's \"FT out of data\" error. Training on fewer images than planned "
            "would silently change what the script asks for.",
            "post_quantization_optimization(finetune, policy=enabled) with 64 calibration images",
            "Supply more images, or lower `dataset_size` to at most the number given "
            "(`post_quantization_optimization(finetune, dataset_size=64)`)."),
    CodeDoc("ALS509", E, "not a quantized model file",
            "The file is not one `alls quantize` wrote, is truncated, or was written by another version of alls.",
            "Its constants cannot be trusted.",
            "alls eval model.onnx --data x.npy",
            "Quantize the model again with this version (`alls quantize`)."),
    CodeDoc("ALS510", E, "no integer kernel for a layer",
            "A layer of the model has no integer kernel (an unsupported op).",
            "The model cannot be quantized as a whole.",
            "a model with an Einsum node",
            "`alls layers MODEL` marks the unsupported layers; export the model without them."),
    CodeDoc("ALS511", I, "algorithm not applied",
            "The plan asks for an algorithm (equalization, bias correction, finetune, adaround) that this run "
            "did not apply.",
            "The quantized model then differs from what the script describes.",
            "model_optimization_flavor(optimization_level=2)",
            "See the message for the algorithms concerned."),
    CodeDoc("ALS512", E, "nothing to analyze",
            "An analysis setting is out of range (no images, `--limit`, `--worst` or `--isolation-images` below 1), "
            "or the inputs hold different numbers of images.",
            "The layer analysis needs at least one image and one layer to blame.",
            "alls analyze model_q.npz --data x.npy --worst 0 -o report",
            "Pass at least one image, and counts of 1 or more."),
    CodeDoc("ALS513", I, "layers analyzed alone on a subset of the images",
            "The view that quantizes one layer at a time ran on the first images only.",
            "Each layer reruns the part of the network below it, once per image: this view costs about as many "
            "network runs as there are layers, so it uses a subset (8 images by default).",
            "alls analyze model_q.npz --data 360_images.npy -o report",
            "Nothing to fix; pass `--isolation-images N` for a steadier ranking at a higher cost."),
    CodeDoc("ALS514", W, "the blamed layers do not carry the error",
            "With the worst layers of the analysis in float and everything else quantized, less than half of an "
            "output's error goes away.",
            "Hailo's guide assumes a few layers carry most of the error and asks to confirm it this way; when the "
            "check fails, the error is spread over many layers, or comes from how their errors interact.",
            "a network whose every depthwise layer loses a little, none of them much",
            "Look further down the layer table, keep more layers in float (`--worst K`), and prefer whole-network "
            "remedies (bias correction, equalization, 16-bit activations)."),
    CodeDoc("ALS540", E, "cutting the model at nodes is not available",
            "`translate_onnx_model` was given `start_node_names` or `end_node_names`, and this version's importer "
            "cannot cut a model at named nodes.",
            "Hailo's parser can parse part of a graph; quantizing the whole graph instead would silently change "
            "what is quantized.",
            "runner.translate_onnx_model(\"net.onnx\", end_node_names=[\"head/Conv\"])",
            "Export the part of the model you need to its own ONNX file (onnx.utils.extract_model), or leave the "
            "node names out to translate the whole graph."),
    CodeDoc("ALS541", E, "a file of Hailo's own formats",
            "A Hailo network description (HN), its native weights (NPZ from Hailo's parser) or a Hailo archive "
            "(HAR) was given; alls reads ONNX models and the quantized files it writes itself.",
            "These formats are Hailo's; alls builds the same layers from the ONNX model the HN was parsed from.",
            "ClientRunner(hn=open(\"net.hn\").read())",
            "Pass the ONNX model (`ClientRunner(model=\"net.onnx\")` or `translate_onnx_model`), or a file "
            "saved by `save_har` / `alls quantize`."),
    CodeDoc("ALS542", E, "unknown hardware architecture",
            "`hw_arch` names no Hailo device.",
            "The emulation is the same on every device, but a misspelt name usually means a script or notebook "
            "copied from elsewhere.",
            "ClientRunner(model=\"net.onnx\", hw_arch=\"hailo-8\")",
            "Use one of the names in the help (hailo8, hailo8l, hailo8r, hailo15h, hailo15m, hailo15l, hailo10h)."),
    CodeDoc("ALS543", E, "raw outputs from a float target",
            "Integer codes (`raw_out=True`) were asked of the native or fp_optimized target.",
            "Only the numeric target computes integer codes; the float targets have no codes to return.",
            "qmodel.run(x, target=\"native\", raw_out=True)",
            "Ask raw outputs of the numeric target, or leave out `raw_out` for float outputs."),
    CodeDoc("ALS544", W, "weights look untrained",
            "The weights of most layers look like a random initialization: every output channel has about the "
            "same norm (as independent draws give), adjacent kernel taps are uncorrelated, the values are "
            "Gaussian or uniform, or the batch norms hold their initial statistics (mean 0, variance 1, scale 1, "
            "shift 0).",
            "Hailo's FAQ (\"unsupported required slope\", and bad accuracy): quantizing a network whose weights "
            "are random gives meaningless ranges and no accuracy to keep, and nothing else fails.",
            "a model exported before its checkpoint was loaded",
            "Export the model after loading its trained weights; the message names the layers and their "
            "statistics."),
    CodeDoc("ALS545", W, "calibration data look like noise",
            "The calibration images have no spatial correlation (neighbouring pixels are independent), and their "
            "histogram is flat or Gaussian: random arrays rather than pre-processed images.",
            "Hailo's FAQ: the calibration set must be real images with the pre-processing the network was trained "
            "with; ranges calibrated on noise do not fit real inputs, and nothing else fails.",
            "runner.run_quantization_from_np(np.random.rand(64, 224, 224, 3))",
            "Calibrate on 32 to 96 real images, pre-processed as in training."),
    CodeDoc("ALS546", E, "a dataset that cannot be read",
            "`run_quantization` was given something that is not an iterable of image batches: an empty iterable, "
            "items that are not arrays, or batches of different image shapes.",
            "Calibration reads images batch after batch and needs them all the same shape.",
            "runner.run_quantization([])",
            "Pass an iterable of (B, H, W, C) arrays (or single (H, W, C) images), all of one shape."),
]

CODES: dict[str, CodeDoc] = {d.code: d for d in _DOCS}


def explain(code: str) -> str:
    """The documentation of ``code`` as text (what / why / example / fix)."""
    doc = CODES[code.upper()]
    return (
        f"{doc.code} ({doc.severity}): {doc.title}\n\n"
        f"What:    {doc.what}\n"
        f"Why:     {doc.why}\n"
        f"Example: {doc.example}\n"
        f"Fix:     {doc.fix}\n"
    )
