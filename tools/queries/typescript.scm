; qcoder's additions for TypeScript and TSX (run after javascript/tags.scm and
; typescript/tags.scm): type aliases, enums, classes, and type references.
(type_alias_declaration name: (type_identifier) @name) @definition.type
(enum_declaration name: (identifier) @name) @definition.enum
(class_declaration name: (type_identifier) @name) @definition.class
(type_identifier) @name @reference.type
