// Why this shim exists: libarchive (cache export/import, artifact archives) and libxml2
// (JUnit reports) are used by few agent commands, yet linking them normally makes every
// `agent` process map and relocate them and their ten dependencies (ICU, zstd, lzma, ...)
// at start-up: about a millisecond of each `agent exec`. This target defines the library
// functions the agent calls as small trampolines that dlopen the library on first use and
// jump to the real function. Swift code calls the functions as usual (through the CArchive
// and CXML2 header modules, which no longer link the libraries).
#ifndef AGENT_LAZYLIBS_H
#define AGENT_LAZYLIBS_H

// Nothing here is called from Swift: the trampolines (archive.c, xml2.c) define the
// libraries' own function names, so the linker binds the agent's calls to them.

#endif
