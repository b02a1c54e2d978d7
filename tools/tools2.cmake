# tools2.cmake — the code-intelligence and git half of qc_tools (tree-sitter, libgit2).
# Included from tools/CMakeLists.txt; defines QC_TOOLS2_SOURCES and the grammar library.
include(${CMAKE_SOURCE_DIR}/cmake/Grammars.cmake)
set(QC_TOOLS2_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/code_lang.c
  ${CMAKE_CURRENT_SOURCE_DIR}/code_tags.c
  ${CMAKE_CURRENT_SOURCE_DIR}/git_repo.c
  ${CMAKE_CURRENT_SOURCE_DIR}/git_tools.c
  ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint.c
  ${QC_QUERIES_C})
set(QC_TOOLS2_LIBS qc_grammars PkgConfig::TS PkgConfig::GIT2 PkgConfig::PCRE2)
