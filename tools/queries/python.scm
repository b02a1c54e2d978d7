; qcoder's additions to tree-sitter-python's tags.scm: names used as base classes and in
; decorators count as references.
(class_definition superclasses: (argument_list (identifier) @name)) @reference.class
(decorator (identifier) @name) @reference.call
