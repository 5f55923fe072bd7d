// libxml2, loaded on first use: the streaming reader functions the JUnit report parser
// calls. A new call into libxml2 needs a line here (the library itself is not linked).
#include "lazy.h"

#include <libxml/parser.h>
#include <libxml/xmlreader.h>

#if LIBXML_VERSION < 20900 || LIBXML_VERSION >= 30000
#error "libxml2 2.9 or later 2.x (libxml2.so.2) expected"
#endif
static void *xml2_handle;
static const char xml2_soname[] = "libxml2.so.2";

AGENT_LAZY_VOID(xml2, xmlInitParser, (void), ())
AGENT_LAZY(xml2, xmlTextReaderPtr, xmlReaderForMemory,
           (const char *buffer, int size, const char *url, const char *encoding, int options),
           (buffer, size, url, encoding, options))
AGENT_LAZY(xml2, xmlTextReaderPtr, xmlReaderForFd,
           (int fd, const char *url, const char *encoding, int options), (fd, url, encoding, options))
AGENT_LAZY(xml2, xmlNodePtr, xmlTextReaderCurrentNode, (xmlTextReaderPtr r), (r))
AGENT_LAZY_VOID(xml2, xmlFreeTextReader, (xmlTextReaderPtr r), (r))
AGENT_LAZY_VOID(xml2, xmlTextReaderSetStructuredErrorHandler,
                (xmlTextReaderPtr r, xmlStructuredErrorFunc f, void *arg), (r, f, arg))
AGENT_LAZY(xml2, int, xmlTextReaderRead, (xmlTextReaderPtr r), (r))
AGENT_LAZY(xml2, int, xmlTextReaderNodeType, (xmlTextReaderPtr r), (r))
AGENT_LAZY(xml2, int, xmlTextReaderIsEmptyElement, (xmlTextReaderPtr r), (r))
AGENT_LAZY(xml2, int, xmlTextReaderMoveToElement, (xmlTextReaderPtr r), (r))
AGENT_LAZY(xml2, int, xmlTextReaderMoveToNextAttribute, (xmlTextReaderPtr r), (r))
AGENT_LAZY(xml2, const xmlChar *, xmlTextReaderConstName, (xmlTextReaderPtr r), (r))
AGENT_LAZY(xml2, const xmlChar *, xmlTextReaderConstValue, (xmlTextReaderPtr r), (r))
AGENT_LAZY(xml2, int, xmlTextReaderGetParserLineNumber, (xmlTextReaderPtr r), (r))
AGENT_LAZY(xml2, int, xmlTextReaderGetParserColumnNumber, (xmlTextReaderPtr r), (r))
AGENT_LAZY(xml2, xmlNodePtr, xmlDocGetRootElement, (const xmlDoc *doc), (doc))
