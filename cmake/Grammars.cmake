# Grammars.cmake — the tree-sitter grammars qcoder parses with, and the tag queries it runs.
#
# The grammar sources are not in the repository: cmake/grammars.txt pins npm packages by
# version and sha256, and scripts/fetch-grammars.sh fetches them (npm registry only, no
# package scripts) into a cache shared by every build tree. This file runs the script at
# configure time when the cache lacks a grammar, then
#   - builds `qc_grammars`, a static library of every parser.c/scanner.c (generated code:
#     compiled with -w at -O2 whatever the build type, and without the sanitizer flags:
#     the parse tables are trusted generated data and -O0/ASan would make them slow), and
#   - writes `qc_queries.c` into the build tree: every tag query qcoder runs (the
#     grammars' own queries/tags.scm plus ours from tools/queries/), embedded as byte
#     arrays, so the binary never reads the cache at run time.
#
# Inputs:  QCODER_GRAMMAR_DIR (cache; default $XDG_CACHE_HOME/qcoder/grammars or
#          ~/.cache/qcoder/grammars; env QCODER_GRAMMAR_DIR overrides the default).
# Outputs: target qc_grammars; variable QC_QUERIES_C (path of the generated source).

if(DEFINED ENV{QCODER_GRAMMAR_DIR})
  set(_qc_gdir_default "$ENV{QCODER_GRAMMAR_DIR}")
elseif(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
  set(_qc_gdir_default "$ENV{XDG_CACHE_HOME}/qcoder/grammars")
else()
  set(_qc_gdir_default "$ENV{HOME}/.cache/qcoder/grammars")
endif()
set(QCODER_GRAMMAR_DIR "${_qc_gdir_default}" CACHE PATH
    "Where scripts/fetch-grammars.sh keeps the pinned tree-sitter grammar sources")

set(_qc_glist "${CMAKE_SOURCE_DIR}/cmake/grammars.txt")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_qc_glist}")

# Parse the pinned list: name;version;sha per row.
file(STRINGS "${_qc_glist}" _qc_rows REGEX "^tree-sitter-")
set(_qc_need_fetch OFF)
set(_qc_gnames "")
foreach(row ${_qc_rows})
  string(REGEX REPLACE "[ \t]+" ";" f "${row}")
  list(GET f 0 name)
  list(GET f 1 ver)
  list(GET f 2 sha)
  set(_qc_gdir_${name} "${QCODER_GRAMMAR_DIR}/${name}-${ver}")
  list(APPEND _qc_gnames ${name})
  set(stamp "${QCODER_GRAMMAR_DIR}/${name}-${ver}/.qcoder-stamp")
  if(EXISTS "${stamp}")
    file(STRINGS "${stamp}" got LIMIT_COUNT 1)
  else()
    set(got "")
  endif()
  if(NOT got STREQUAL sha)
    set(_qc_need_fetch ON)
  endif()
endforeach()

if(_qc_need_fetch)
  message(STATUS "Fetching tree-sitter grammars into ${QCODER_GRAMMAR_DIR}")
  execute_process(
    COMMAND bash "${CMAKE_SOURCE_DIR}/scripts/fetch-grammars.sh" "${QCODER_GRAMMAR_DIR}"
    RESULT_VARIABLE _qc_rc)
  if(NOT _qc_rc EQUAL 0)
    message(FATAL_ERROR "scripts/fetch-grammars.sh failed (exit ${_qc_rc}). It needs npm and the "
      "npm registry; run it by hand to see why, or point QCODER_GRAMMAR_DIR at a filled cache.")
  endif()
endif()

# Language name -> source folder inside its package (typescript ships two grammars).
set(_qc_langs c cpp python javascript typescript tsx go rust java bash json)
set(_qc_src_c          "${_qc_gdir_tree-sitter-c}/src")
set(_qc_src_cpp        "${_qc_gdir_tree-sitter-cpp}/src")
set(_qc_src_python     "${_qc_gdir_tree-sitter-python}/src")
set(_qc_src_javascript "${_qc_gdir_tree-sitter-javascript}/src")
set(_qc_src_typescript "${_qc_gdir_tree-sitter-typescript}/typescript/src")
set(_qc_src_tsx        "${_qc_gdir_tree-sitter-typescript}/tsx/src")
set(_qc_src_go         "${_qc_gdir_tree-sitter-go}/src")
set(_qc_src_rust       "${_qc_gdir_tree-sitter-rust}/src")
set(_qc_src_java       "${_qc_gdir_tree-sitter-java}/src")
set(_qc_src_bash       "${_qc_gdir_tree-sitter-bash}/src")
set(_qc_src_json       "${_qc_gdir_tree-sitter-json}/src")

set(_qc_gsrcs "")
foreach(lang ${_qc_langs})
  set(d "${_qc_src_${lang}}")
  if(NOT EXISTS "${d}/parser.c")
    message(FATAL_ERROR "grammar ${lang}: ${d}/parser.c is missing; delete its folder in "
      "${QCODER_GRAMMAR_DIR} and configure again")
  endif()
  list(APPEND _qc_gsrcs "${d}/parser.c")
  if(EXISTS "${d}/scanner.c")
    list(APPEND _qc_gsrcs "${d}/scanner.c")
  endif()
endforeach()

add_library(qc_grammars STATIC ${_qc_gsrcs})
# Each parser.c/scanner.c includes "tree_sitter/parser.h" relative to itself, so no include
# directory is added: the system <tree_sitter/api.h> is never shadowed.
target_compile_options(qc_grammars PRIVATE -w -O2 -g0 -fPIC)
set_target_properties(qc_grammars PROPERTIES C_STANDARD 11 C_EXTENSIONS ON)

# ---- embedded queries ------------------------------------------------------------------
# name in the binary        file
set(_qc_query_files
  "c/tags.scm"              "${_qc_gdir_tree-sitter-c}/queries/tags.scm"
  "cpp/tags.scm"            "${_qc_gdir_tree-sitter-cpp}/queries/tags.scm"
  "python/tags.scm"         "${_qc_gdir_tree-sitter-python}/queries/tags.scm"
  "javascript/tags.scm"     "${_qc_gdir_tree-sitter-javascript}/queries/tags.scm"
  "typescript/tags.scm"     "${_qc_gdir_tree-sitter-typescript}/queries/tags.scm"
  "go/tags.scm"             "${_qc_gdir_tree-sitter-go}/queries/tags.scm"
  "rust/tags.scm"           "${_qc_gdir_tree-sitter-rust}/queries/tags.scm"
  "java/tags.scm"           "${_qc_gdir_tree-sitter-java}/queries/tags.scm")
file(GLOB _qc_own_queries "${CMAKE_SOURCE_DIR}/tools/queries/*.scm")
foreach(f ${_qc_own_queries})
  get_filename_component(base "${f}" NAME)
  list(APPEND _qc_query_files "qcoder/${base}" "${f}")
endforeach()

set(QC_QUERIES_C "${CMAKE_CURRENT_BINARY_DIR}/qc_queries.c")
set(_qc_out "/* Generated by cmake/Grammars.cmake: the tag queries, embedded. Do not edit. */\n")
string(APPEND _qc_out "#include <stddef.h>\n#include \"tools/code_internal.h\"\n\n")
set(_qc_table "")
set(_qc_i 0)
list(LENGTH _qc_query_files _qc_n)
while(_qc_i LESS _qc_n)
  list(GET _qc_query_files ${_qc_i} qname)
  math(EXPR _qc_j "${_qc_i} + 1")
  list(GET _qc_query_files ${_qc_j} qfile)
  if(NOT EXISTS "${qfile}")
    message(FATAL_ERROR "query ${qname}: ${qfile} is missing")
  endif()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${qfile}")
  file(READ "${qfile}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(MAKE_C_IDENTIFIER "q_${qname}" ident)
  string(APPEND _qc_out "static const char ${ident}[] = {${hex}0};\n")
  string(APPEND _qc_table "  {\"${qname}\", ${ident}, sizeof ${ident} - 1},\n")
  math(EXPR _qc_i "${_qc_i} + 2")
endwhile()
string(APPEND _qc_out "\nconst tool__embedded tool__embedded_queries[] = {\n${_qc_table}  {NULL, NULL, 0},\n};\n")
file(CONFIGURE OUTPUT "${QC_QUERIES_C}" CONTENT "${_qc_out}" @ONLY)
