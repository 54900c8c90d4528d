"""The `.alls` grammar (`alls.lark`), shipped as package data of `alls`."""
