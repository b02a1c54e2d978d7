; Tags for JSON (tree-sitter-json ships none): the keys of the top-level object are its
; definitions (what a reader of package.json or a config file looks for); nested keys
; would drown them, and JSON has no references.
(document (object (pair key: (string (string_content) @name)) @definition.key))
