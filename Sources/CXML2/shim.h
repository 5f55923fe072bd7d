// Why this shim exists: exposes libxml2's streaming reader (<libxml/xmlreader.h>) to Swift
// as a system-library module, for the JUnit report parser. <libxml/parser.h> is included
// for the parser context the structured error handler is given; <libxml/xmlerror.h> for
// the error record and its codes.
#include <libxml/parser.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlreader.h>
