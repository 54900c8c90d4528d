// The client: starts `alls lsp` for .alls files and passes the model settings on.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function settings() {
  const config = vscode.workspace.getConfiguration("alls");
  return {
    model: config.get("model") || undefined,
    inputShape: config.get("inputShape") || undefined,
    endNodes: config.get("endNodes") || [],
    name: config.get("name") || undefined,
  };
}

function activate(context) {
  const command = vscode.workspace.getConfiguration("alls").get("server.path") || "alls";
  const serverOptions = { command, args: ["lsp"], transport: TransportKind.stdio };
  const clientOptions = {
    documentSelector: [
      { scheme: "file", language: "alls" },
      { scheme: "untitled", language: "alls" },
    ],
    initializationOptions: settings(),
    synchronize: { configurationSection: "alls" },
    outputChannelName: "alls",
  };
  client = new LanguageClient("alls", "alls language server", serverOptions, clientOptions);
  context.subscriptions.push(client);
  return client.start().catch((error) => {
    vscode.window.showErrorMessage(
      `alls: cannot start \`${command} lsp\` (${error.message}). Install it with pip install 'alls[lsp]' ` +
        "or set alls.server.path."
    );
  });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
