; Tags for bash (tree-sitter-bash ships none): functions and top-level variables are
; definitions; command names are references (calls of functions or programs).
(function_definition name: (word) @name) @definition.function
(program (variable_assignment name: (variable_name) @name) @definition.variable)
(program (declaration_command (variable_assignment name: (variable_name) @name)) @definition.variable)
(command name: (command_name (word) @name)) @reference.call
