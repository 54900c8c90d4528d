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
    CodeDoc("ALS000", E, "internal error",
            "The tool met a condition it does not handle: a bug in alls, not in the input.",
            "Every failure a user can cause has its own code; this one means none of them applied.",
            "alls quantize model.onnx --calib calib.npy -o q.npz   (ending in an unexpected exception)",
            "Report it with the command, the files if you can share them, and `alls --version`; `--debug` "
            "prints the traceback."),
    CodeDoc("ALS001", E, "a file cannot be read",
            "The path given does not exist, is a directory, or cannot be opened.",
            "There is nothing to check.",
            "alls check missing.alls",
            "Check the path and the file's permissions."),
    CodeDoc("ALS002", E, "output folder does not exist",
            "The folder of an output path does not exist.",
            "alls creates no folders for a file output; a typo in the path would otherwise create a tree. "
            "The check runs before any work, so a long job does not end without its result.",
            "alls quantize model.onnx --calib calib.npy -o nodir/q.npz",
            "Create the folder, or write somewhere else."),
    CodeDoc("ALS003", E, "output cannot be written",
            "The folder of an output is not writable, or the write failed (permissions, a full disk).",
            "The result would be lost; the check runs before the work where it can.",
            "alls quantize model.onnx --calib calib.npy -o /q.npz",
            "Write somewhere you have permission to, or free space."),
    CodeDoc("ALS004", E, "output exists",
            "The output file exists and `--force` was not given.",
            "Nothing the user made is overwritten without being asked.",
            "alls quantize model.onnx --calib calib.npy -o q.npz   (q.npz already there)",
            "Pass `--force` to overwrite it, or choose another name."),
    CodeDoc("ALS005", E, "output is not a regular file",
            "The output path names a directory, a FIFO, a socket or a device.",
            "Only regular files are written; writing to a FIFO would block, to a device could destroy data.",
            "alls quantize model.onnx --calib calib.npy -o samples/",
            "Name a file inside the folder: `-o samples/q.npz`."),
    CodeDoc("ALS006", E, "output is a symbolic link",
            "The output path is a symbolic link.",
            "Writing through a link changes a file elsewhere, which the command line does not show; `alls fmt` "
            "is the exception: it rewrites the file the link points to.",
            "alls plan net.alls --model m.onnx -o link-to-plan.json",
            "Write to the file the link points to, or remove the link."),
    CodeDoc("ALS007", E, "file of the wrong kind",
            "A file given in one place is another kind of file: a NumPy array where the quantized model goes, "
            "an archive where images go, a binary file where a script goes.",
            "The kind is read from the file's first bytes, so the mistake is named instead of failing deep "
            "inside the work.",
            "alls eval samples/digits/test_x.npy --data samples/digits/test_x.npy",
            "Pass each file in its place: the message says what the file is and what was expected."),
    CodeDoc("ALS008", E, "labels do not fit the data",
            "The labels are not one integer class per image, or their count differs from the images'.",
            "Top-1 accuracy pairs the i-th label with the i-th image; a different count pairs them wrongly.",
            "alls eval q.npz --data test_x.npy --labels train_y.npy",
            "Pass the labels of the same images, as a 1-D integer array of the same length."),
    CodeDoc("ALS009", E, "unknown diagnostic code",
            "`alls explain` was given a code that does not exist.",
            "Codes are stable; a code that is not listed was mistyped or comes from another tool.",
            "alls explain ALS2030",
            "Run `alls explain` to list every code."),
    CodeDoc("ALS010", W, "stale temporary file removed",
            "A temporary file `.alls-<pid>-*.tmp` left by a run that was killed before it finished writing.",
            "Outputs are written to a temporary file and renamed when complete; a killed run leaves the "
            "temporary file behind, never a half-written output. The next write into the folder removes it.",
            "alls quantize ... -o q.npz   (after an earlier run was killed with SIGKILL)",
            "Nothing to do; the earlier run's output was never written."),
    CodeDoc("ALS011", E, "optional extra not installed",
            "A command needs a library that is an optional extra of alls, such as matplotlib for the "
            "analysis report's figures.",
            "The core toolchain stays small; figures are drawn only where they are wanted.",
            "alls analyze q.npz --data x.npy -o report/   (without matplotlib)",
            "Install the extra: `pip install 'alls[report]'`."),
    CodeDoc("ALS020", E, "script too large",
            "The script holds more bytes than `max_script_bytes` (16 MiB by default), or a stream given as the "
            "script did not end before it.",
            "The largest real script is about 1 MB; a larger input is generated or hostile (`/dev/zero`), and "
            "reading it whole could exhaust memory.",
            "alls check /dev/zero",
            "Check the file; if it is trusted, raise the limit: `--max-script-bytes N` or "
            "`Limits(max_script_bytes=N)`."),
    CodeDoc("ALS021", E, "brackets nested too deep",
            "Brackets `(` and `[` nest deeper than `max_nesting` (64 by default).",
            "Real scripts nest two or three levels; thousands of levels exhaust the stack of the passes after "
            "the parser.",
            "quantization_param(conv1, x=[[[[[[...]]]]]])",
            "Flatten the value; if the script is trusted, raise the limit: `--max-nesting N`."),
    CodeDoc("ALS022", E, "literal too long",
            "One name, number or string is longer than `max_literal_chars` (4096 by default).",
            "The longest name in real scripts is about 130 characters; an integer of thousands of digits costs "
            "quadratic time to convert.",
            "batch_size=100000000000...0 (5,000 digits)",
            "Shorten it; if the script is trusted, raise the limit: `--max-literal-chars N`."),
    CodeDoc("ALS023", E, "tensor too large",
            "A tensor of the model (a weight, an input shape, a shape given with `--input-shape`) declares more "
            "elements than `max_tensor_elements` (2^30 by default), or a dimension beyond int64.",
            "The size is declared before the data: allocating it first would exhaust memory on a tiny file.",
            "alls layers model.onnx --input-shape 1,3,100000,100000",
            "Check the model and the shape; if they are right, raise the limit: `--max-tensor-elements N`."),
    CodeDoc("ALS024", E, "model constants too large",
            "The model's initializers hold more bytes than `max_constant_bytes` (4 GiB by default).",
            "The constants are loaded whole; larger ones would exhaust memory.",
            "a model whose external weights file is 10 GB",
            "If the model is trusted, raise the limit: `--max-constant-bytes N`."),
    CodeDoc("ALS025", E, "constant fold too large",
            "A node whose inputs are all constant would produce more elements than `max_fold_elements` (2^26 by "
            "default) when the importer evaluates it.",
            "Folding runs the node at import time: a 166-byte ConstantOfShape can ask for gigabytes.",
            "ConstantOfShape([100000, 100000, 100])",
            "Check the model; if it is trusted, raise the limit: `--max-fold-elements N`."),
    CodeDoc("ALS026", E, "constant fold too slow",
            "Evaluating a node of constants took longer than `max_fold_seconds` (10 s by default). Loop, Scan and "
            "If are never folded.",
            "Folding runs the node at import time; a hostile graph can ask for unbounded work.",
            "a constant Einsum over large tensors",
            "Check the model; if it is trusted, raise the limit: `--max-fold-seconds S`."),
    CodeDoc("ALS027", E, "array too large",
            "A `.npy` header, or the members of an `.npz`, declare more bytes than `max_array_bytes` (16 GiB by "
            "default).",
            "The size is read from the header before anything is allocated: a 100-byte file can claim terabytes.",
            "a .npy whose header says shape (1000000, 1000000, 3)",
            "Check the file; if it is trusted, raise the limit: `--max-array-bytes N`."),
    CodeDoc("ALS028", E, "compressed member expands too much",
            "An `.npz` member is more than `max_compression_ratio` (200 by default) times larger than its "
            "compressed bytes.",
            "Real data compress a few times; a zip bomb of 2 MB expands to gigabytes.",
            "an .npz holding a compressed array of zeros of 2 GB",
            "Check the file; if it is trusted, raise the limit: `--max-compression-ratio N`."),
    CodeDoc("ALS029", E, "bad image folder",
            "A folder given as images holds no `.npy` files, or files of different shapes or dtypes (or one "
            "changed while it was read).",
            "The files of a folder are read in the order of their names as one batch of images; images of "
            "different shapes cannot be one batch.",
            "alls quantize net.onnx --calib images/ -o q.npz   # a.npy holds (320, 320, 3), b.npy (224, 224, 3)",
            "Save each image (H, W, C), or each batch (n, H, W, C), with numpy.save into the folder, all of one "
            "shape and dtype."),
    CodeDoc("ALS050", E, "bad model line",
            "The first line `# alls: ...` that names a script's model for the editor has an unknown setting, "
            "no `model=`, or a bad `input_shape=`.",
            "The language server binds the script to that model for layer completion, selector hovers and "
            "selector checks; it cannot guess what a bad line meant.",
            "# alls: model=net.onnx input_shape=1,3,320",
            "Write `# alls: model=path/to/model.onnx input_shape=1,3,320,320 end_nodes=NODE,...` "
            "(`model` relative to the script)."),
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
            "Add `post_quantization_optimization(finetune, policy=enabled)`. 4-bit weights are clipped at the "
            "MSE-optimal threshold (mode=mmse) unless a weights_clipping statement says otherwise. Finetune holds "
            "a quarter of its dataset_size images out of training and keeps, per layer, the checkpoint that does "
            "best on them (round to nearest included); with the default epochs it trains 1024 steps whatever the "
            "images given."),
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
    CodeDoc("ALS406", E, "no such start or end node",
            "A start or end node (--start-nodes, --end-nodes, a zoo config's parser.nodes) is not a node of the "
            "model: neither an ONNX node name nor a tensor a node writes.",
            "The graph cannot be cut where asked; cutting elsewhere would change every layer name after it.",
            "alls layers yolov8n.onnx --end-nodes /model.22/cv2.0/cv2.0.2/Conv2",
            "Use one of the names shown (`alls layers` lists each layer's ONNX node names as aliases)."),
    CodeDoc("ALS407", E, "cut leaves an input unreachable",
            "The end nodes need a tensor from outside the cut: a path around the start nodes to an original "
            "input, or an input that reaches none of the end nodes.",
            "The network between the start and end nodes would not be closed: some of it would have no input.",
            "a start node inside a residual block whose skip connection starts before it",
            "Add the node named to the start nodes, start earlier, or choose end nodes that use every input."),
    CodeDoc("ALS408", E, "start node reaches no end node",
            "No path leads from a start node to any end node.",
            "The start node would be an input that nothing reads.",
            "alls layers model.onnx --start-nodes /model.22/cv2.0/cv2.0.0/conv/Conv --end-nodes /model.9/cv2/conv/Conv",
            "Check the order of the names: start nodes lie before the end nodes."),
    CodeDoc("ALS409", E, "zoo config cannot be read",
            "A --zoo-config file is missing, or holds YAML outside the subset the model zoo writes (flow "
            "collections, block scalars, anchors), or an input_shape that is not H x W x C.",
            "Its start and end nodes and input shape cannot be taken from it.",
            "alls layers yolov8s.onnx --zoo-config networks/yolov8s.yml",
            "Give a network config from hailo_model_zoo's cfg/networks, or --start-nodes/--end-nodes/--input-shape."),
    CodeDoc("ALS410", E, "quantized file cut elsewhere",
            "--start-nodes/--end-nodes given to eval or analyze differ from the cut the file was quantized with.",
            "A quantized file holds the layers of the graph it was cut to; another cut is another network.",
            "alls eval q.npz --end-nodes /model.22/Concat_5 (quantized with the six head convs as end nodes)",
            "Leave the options out (the file remembers its cut) or quantize again with the new cut."),
    CodeDoc("ALS411", I, "unsupported ops can be cut off",
            "Every unsupported op lies after a cut that leaves a network of supported layers; the note names "
            "the end nodes of that cut.",
            "Hailo's own flow ends most networks before their post-processing (the zoo's parser.nodes); the "
            "emulator can then quantize and run the rest.",
            "a CRNN whose convolutional part ends in an LSTM",
            "Pass the end nodes shown to --end-nodes (or end_nodes= in Python) and do the rest in float."),
    CodeDoc("ALS416", E, "MatMul of two tensors in a form without a layer",
            "A MatMul of two activations (neither operand constant) whose shapes the `matmul` layer does not take: "
            "an operand of rank 1 or 2, operands of different ranks, or batch axes that do not broadcast.",
            "The layer multiplies (..., M, K) by (..., K, N) per image; axis 0 is the images, so a rank-2 product, "
            "or one that broadcasts one operand over the images, would mix the images of a batch.",
            "MatMul(x: 1x64, y: 64x10) where both come from other layers",
            "Reshape the operands to rank 3 or more with the images on axis 0 (attention's (N, heads, d, HW)), or "
            "make the second operand a constant (a dense layer)."),
    CodeDoc("ALS417", E, "MatMul sums too wide to emulate",
            "A `matmul` layer with two 16-bit operands and an inner dimension K of 32,770 or more: its sums "
            "K·(2^16 − 1)² reach 2^47.",
            "The emulator computes the product exactly in int64 and requantizes it (runtime/NUMERICS.md (N37)); "
            "beyond 2^47 the requantization's product could overflow, so the layer cannot be emulated exactly.",
            "quantization_param({*}, precision_mode=a16_w16) on a transformer whose attention sums over 40,000 tokens",
            "Keep one operand of the layer at 8 bits (the precision of the layer that produces it)."),
    CodeDoc("ALS440", E, "graph out of order or in a cycle",
            "A node reads a tensor that a later node produces: the nodes are out of topological order, or form a "
            "cycle.",
            "A network's graph is acyclic and ONNX stores it sorted; anything else cannot be run in one pass.",
            "Add(y, x) -> z; Relu(z) -> y",
            "Re-export the model; the message names the node and the tensors of the cycle."),
    CodeDoc("ALS441", E, "input provided by nothing",
            "A node (or a graph output) names a tensor that no node, graph input or initializer provides.",
            "The model is incomplete: the tensor's values are nowhere.",
            "Relu(missing) -> y",
            "Re-export the model; check that the export kept every node."),
    CodeDoc("ALS442", E, "two producers for one tensor",
            "Two nodes write the same tensor, or a node writes a graph input or an initializer.",
            "Which value the readers see would depend on the order; the layers would also share one name.",
            "Relu(x) -> y; Sigmoid(x) -> y",
            "Rename one of the outputs, or re-export the model."),
    CodeDoc("ALS443", E, "node reads its own output",
            "A node's output is also one of its inputs (an Identity from `y` to `y`).",
            "A tensor cannot be computed from itself; following it never ends.",
            "Identity(y) -> y",
            "Re-export the model."),
    CodeDoc("ALS444", E, "zero or negative dimension",
            "A weight, an input or an input shape given has a dimension of 0 or less (an empty 1-D tensor, as "
            "ONNX uses for an unused input, is allowed).",
            "A layer with 0 output channels divides by zero and computes nothing.",
            "a Conv weight of shape (0, 3, 3, 3)",
            "Re-export the model, or give every dimension at least 1 in `--input-shape`."),
    CodeDoc("ALS445", E, "data do not fill the declared shape",
            "A tensor's data hold more or fewer elements than its declared shape says, or its element type is "
            "unknown.",
            "The values cannot be laid out in the shape; the file is damaged or was edited.",
            "a (16, 3, 3, 3) weight stored with 100 floats",
            "Re-export the model."),
    CodeDoc("ALS446", E, "NaN or Inf in a weight",
            "A floating-point weight holds NaN or infinity.",
            "Every output that reads the weight becomes NaN; calibration ranges are then undefined.",
            "a model saved after training diverged",
            "Re-export the model from a checkpoint with finite weights."),
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
    CodeDoc("ALS520", E, "non-finite values in a layer",
            "A layer computed NaN or Inf while calibrating (or training): its range, and every statistic after "
            "it, is undefined.",
            "Quantization needs a finite range per tensor; an overflowing activation used to loop forever.",
            "calibrating a model whose weights make activations overflow float32",
            "Check the model's weights and the data's range, and the script's normalization."),
    CodeDoc("ALS521", E, "data beyond float16's range",
            "The images hold values beyond ±65504 (float16's largest).",
            "Real images, raw or normalized, stay far below; values near float32's limit overflow in the first "
            "layer.",
            "calibration images filled with 3e38",
            "Scale the images to their usual range; integer images (uint8, int64, ...) are converted to float32 "
            "exactly, within this range."),
    CodeDoc("ALS522", E, "no images",
            "There are no images to run on: the array holds none.",
            "Figures over no images are undefined; they used to come out empty or as a traceback.",
            "alls eval q.npz --data empty.npy",
            "Pass at least one image."),
    CodeDoc("ALS523", E, "count below 1",
            "A batch size or a number of batches is 0 or negative.",
            "A run needs at least one batch of at least one image.",
            "alls quantize model.onnx --calib x.npy --batch-size -4 -o q.npz",
            "Give a positive count, or leave it out to use the script's."),
    CodeDoc("ALS524", E, "labels are not class indices",
            "The labels are not one whole number per image within the model's classes (fractional, NaN, one-hot "
            "rows, out of range, or a different count).",
            "Top-1 accuracy compares class indices; anything else reports a meaningless 0%.",
            "labels saved as one-hot rows (N, 10)",
            "Save one integer class index per image."),
    CodeDoc("ALS525", I, "tensors equalization cannot reach",
            "Equalization left alone tensors that layers with weights read: the layer named stops per-channel "
            "factors exactly (an activation that is not positive-homogeneous, such as ReLU6, hard-swish or "
            "hard-sigmoid; a residual add or a concat with a tensor from another writer; a network output).",
            "Equalization must not change what the network computes: a factor s passes ReLU, PReLU, pooling, "
            "resize, squeeze-excite gates and sums of equally scaled tensors, but relu6(z/s) is not relu6(z)/s, "
            "and a per-channel clip or breakpoint (6/s, ±3/s) is not something one activation per layer can "
            "express. Those layers keep their per-tensor weight ranges as they are.",
            "a PP-LCNet backbone, hard-swish after every conv",
            "Nothing to fix in the script; where such a layer loses accuracy, bias correction, finetune, "
            "quantization groups or 16-bit activations (`a8_w8_a16`) are the remedies."),
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
    CodeDoc("ALS550", E, "a thread count that cannot be used",
            "`threads=` (or `--threads`) is not a whole number from 1 to the threads Numba may start: zero, "
            "negative, a fraction, text, or more than its pool (`NUMBA_NUM_THREADS`, by default the cores).",
            "The runtime runs its kernels on at most that many threads, and Numba cannot start more threads "
            "than its pool holds.",
            "qmodel.run(images, threads=0)",
            "Give a count from 1 to the number of cores, or leave it out to use every core."),
    CodeDoc("ALS551", E, "an output activation the emulation cannot run",
            "`change_output_activation` asks a layer for an activation the runtime cannot fuse into it: a layer "
            "kind that carries no activation (a concat, a pool, a resize, ...), or a softmax.",
            "Every target (native, fp_optimized, numeric) runs the activation the script gives; the runtime fuses "
            "one into conv, dw, deconv, fc, batch_norm, ew_add, ew_sub, ew_mult and activation layers, while "
            "a softmax is a layer of its own in Hailo's model, not an activation of the layer before it.",
            "change_output_activation(concat3, sigmoid)",
            "Add the activation to the model itself, or end the network before the layer (--end-nodes)."),
    CodeDoc("ALS560", E, "bad memory limit",
            "`memory_limit` (`--memory-limit`) is not a size, or is below 64 MiB.",
            "The limit bounds what the big jobs hold of the data: images beyond a quarter of it are read a "
            "batch at a time, tensors beyond their share of it go to temporary files.",
            "alls quantize net.onnx --calib x.npy -o q.npz --memory-limit 4X",
            "Give a size such as 4GiB, 512MiB or a number of bytes (default 4GiB)."),
    CodeDoc("ALS561", E, "cannot spill to disk",
            "A tensor beyond the memory limit could not be written to, or read back from, the temporary folder.",
            "Finetune and bias correction over many images keep what does not fit the memory limit in "
            "temporary files (removed when the run ends); the disk must hold it.",
            "alls quantize net.onnx --calib big.npy -o q.npz --finetune   # with a full /tmp",
            "Free space in the temporary folder, point TMPDIR at a larger disk, or raise --memory-limit."),
    CodeDoc("ALS565", E, "taps do not fit on the disk",
            "The tensors `alls taps` would write (every selected layer, target and image) take more than the "
            "free space of the taps folder's disk, so nothing is run.",
            "The tensors are written a batch at a time as they are made, so memory does not bound them: the "
            "disk does, and a disk that fills midway would leave the files unfinished after a long run.",
            "alls taps q.npz --data big.npy --target native --target numeric -o taps/   # every layer",
            "Select fewer layers (--layers), targets (--target) or images (--limit), or write to a larger disk."),
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
