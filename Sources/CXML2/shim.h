// Why this shim exists: exposes libxml2's streaming reader (<libxml/xmlreader.h>) to Swift
// as a system-library module, for the JUnit report parser. <libxml/parser.h> is included
// for the parser context the structured error handler is given; <libxml/xmlerror.h> for
// the error record and its codes.
//
// Debian's libxml2 is built with ICU, so <libxml/encoding.h> includes the system's
// <unicode/ucnv.h>. Foundation carries its own ICU (_FoundationICU) whose UErrorCode differs,
// and a Swift module that sees both clang modules (a test file importing Foundation beside
// AgentCore) fails to build: "'UErrorCode' has different definitions in different modules".
// Nothing of ours touches libxml2's ICU converters (only the fields at the end of
// xmlCharEncodingHandler, which Swift never allocates or reads), so the module is built
// without them: <libxml/xmlversion.h> first, then its ICU switch off for the rest.
#include <libxml/xmlversion.h>
#undef LIBXML_ICU_ENABLED
#include <libxml/parser.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlreader.h>
