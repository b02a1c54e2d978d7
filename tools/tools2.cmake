# tools2.cmake — the code-intelligence half of qc_tools: the grammar library and the
# generated source of embedded tag queries (the .c files are picked up by the folder's
# glob). Included from tools/CMakeLists.txt.
include(${CMAKE_SOURCE_DIR}/cmake/Grammars.cmake)
set(QC_TOOLS2_SOURCES ${QC_QUERIES_C})
set(QC_TOOLS2_LIBS qc_grammars PkgConfig::TS m)
