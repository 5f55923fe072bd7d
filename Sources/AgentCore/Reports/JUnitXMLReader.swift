import CXML2
import FoundationEssentials
import Glibc

/// Walks a report with libxml2's streaming reader (`xmlTextReader`) and feeds the nodes
/// to a `JUnitReaderState`. libxml2 is used directly (not through Foundation's XMLParser)
/// so the agent does not load Foundation at start-up; the reader API keeps this a plain
/// pull loop, with a callback only for errors.
enum JUnitXMLReader {
    /// No network access and nothing that makes libxml2 fetch or expand more than the
    /// document itself: no XML_PARSE_NOENT (a report has no business declaring entities,
    /// and substitution is what entity-expansion attacks feed on; references in text are
    /// dropped, as before), no DTDLOAD/DTDATTR/DTDVALID, no HUGE (it lifts libxml2's depth,
    /// size and entity-amplification guards). Not NOBLANKS either: it drops white-space-only
    /// text next to CDATA or comments, which would change captured output.
    private static let options = Int32(XML_PARSE_NONET.rawValue)

    /// `xmlInitParser` is not safe to run for the first time on two threads at once, and
    /// reports of concurrent jobs are parsed concurrently: run it once, under Swift's
    /// `static let` once-guard, before any reader exists.
    private static let libxml2Ready: Void = { xmlInitParser() }()

    /// Reads `data` into `state`. Returns nil when the document was read to its end (the
    /// caller then checks `state`), or the problem that ends the report: the state's own
    /// (wrong root), a declared entity, or "line L, column C: reason" for XML that is not
    /// well-formed.
    static func read(_ data: Data, into state: inout JUnitReaderState) -> String? {
        data.withUnsafeBytes { raw -> String? in
            guard let base = raw.baseAddress, raw.count <= Int(Int32.max) else {
                return "line 1, column 1: libxml2 could not start reading the document"
            }
            return read(into: &state) { xmlReaderForMemory(base.assumingMemoryBound(to: CChar.self), Int32(raw.count), nil, nil, options) }
        }
    }

    /// Reads the report open at `fd` (not closed here) into `state`, streaming: libxml2
    /// reads the file in small pieces, so the agent never holds the whole report.
    static func read(fd: Int32, into state: inout JUnitReaderState) -> String? {
        read(into: &state) { xmlReaderForFd(fd, nil, nil, options) }
    }

    private static func read(into state: inout JUnitReaderState, _ makeReader: () -> xmlTextReaderPtr?) -> String? {
        _ = libxml2Ready
        let errors = ErrorSink()
        return withExtendedLifetime(errors) {
            guard let reader = makeReader() else { return "line 1, column 1: libxml2 could not start reading the document" }
            defer { xmlFreeTextReader(reader) }
            // Before the first read: libxml2 parses lazily, inside xmlTextReaderRead. The
            // closure captures nothing (it is a C function pointer); the sink comes back as `arg`.
            xmlTextReaderSetStructuredErrorHandler(reader, { arg, error in
                guard let arg, let error else { return }
                Unmanaged<ErrorSink>.fromOpaque(arg).takeUnretainedValue().record(error.pointee)
            }, Unmanaged.passUnretained(errors).toOpaque())
            return walk(reader, errors, &state)
        }
    }

    /// The first entity the document's internal subset declares, if any. Reports have no
    /// use for entities, and without XML_PARSE_NOENT libxml2 still expands them when an
    /// attribute's value is asked for: one 3 KB entity referenced thousands of times per
    /// attribute turned a 1.6 MB report into 1.6 GB of agent memory (linear amplification,
    /// which libxml2's own guard lets through). So a declaration refuses the report.
    private static func declaredEntity(_ reader: xmlTextReaderPtr) -> String? {
        // Not xmlTextReaderCurrentDoc: it would hand the document's ownership to us.
        guard let node = xmlTextReaderCurrentNode(reader), let doc = node.pointee.doc,
              let dtd = doc.pointee.intSubset else { return nil }
        var child = dtd.pointee.children
        while let c = child {
            if c.pointee.type == XML_ENTITY_DECL { return c.pointee.name.map { String(cString: $0) } ?? "" }
            child = c.pointee.next
        }
        return nil
    }

    static func entityProblem(_ name: String) -> String {
        "declares the entity \"\(name)\" (entity declarations are refused: expanding them can multiply a report's size)"
    }

    private static func walk(_ reader: xmlTextReaderPtr, _ errors: ErrorSink, _ state: inout JUnitReaderState) -> String? {
        while true {
            let status = xmlTextReaderRead(reader)
            if status == 0 { break }
            if status < 0 {
                // The reader stops at the first fatal error, often before it has handed out
                // the nodes parsed ahead of it: the wrong-root check uses the tree instead.
                if !state.sawRoot, let root = errors.root, root != "testsuites", root != "testsuite" {
                    return JUnitReaderState.wrongRoot(root)
                }
                let e = errors.firstFatal ?? errors.firstError
                let line = e.map(\.line).flatMap { $0 > 0 ? $0 : nil } ?? Int(xmlTextReaderGetParserLineNumber(reader))
                let column = e.map(\.column).flatMap { $0 > 0 ? $0 : nil } ?? Int(xmlTextReaderGetParserColumnNumber(reader))
                return "line \(line), column \(column): \(e.map(describe) ?? "not well-formed XML")"
            }
            switch UInt32(xmlTextReaderNodeType(reader)) {
            case XML_READER_TYPE_DOCUMENT_TYPE.rawValue:
                if let entity = declaredEntity(reader) { return entityProblem(entity) }
            case XML_READER_TYPE_ELEMENT.rawValue:
                // Checked again at the root, before any attribute value is expanded: the
                // internal subset is complete by then whatever the reader delivered before.
                if !state.sawRoot, let entity = declaredEntity(reader) { return entityProblem(entity) }
                let name = string(xmlTextReaderConstName(reader))
                let isEmpty = xmlTextReaderIsEmptyElement(reader) == 1  // <x/> gets no END_ELEMENT
                var attributes: [String: String] = [:]
                while xmlTextReaderMoveToNextAttribute(reader) == 1 {
                    let key = string(xmlTextReaderConstName(reader))
                    if attributes[key] == nil { attributes[key] = state.attribute(string(xmlTextReaderConstValue(reader))) }
                }
                xmlTextReaderMoveToElement(reader)
                state.startElement(name, attributes: attributes)
                if let problem = state.problem { return problem }
                if isEmpty { state.endElement(name) }
            case XML_READER_TYPE_END_ELEMENT.rawValue:
                state.endElement(string(xmlTextReaderConstName(reader)))
            case XML_READER_TYPE_TEXT.rawValue, XML_READER_TYPE_CDATA.rawValue,
                 XML_READER_TYPE_WHITESPACE.rawValue, XML_READER_TYPE_SIGNIFICANT_WHITESPACE.rawValue:
                // Only copied when kept; the pointer is valid until the next read.
                if state.isCapturing, let value = xmlTextReaderConstValue(reader) {
                    state.appendText(UnsafeBufferPointer(start: value, count: strlen(value)))
                }
            default:
                break  // comments, PIs, the doctype, entity references (not substituted: dropped)
            }
        }
        // Namespace errors (an undeclared prefix, an attribute given twice through two
        // prefixes) do not stop libxml2's reader, but the report is not well-formed XML with
        // namespaces and was always refused: refuse it here. Warnings (a relative namespace
        // URI, `version="1.1"`) are not errors and pass. A fatal error here is a backstop.
        if let e = errors.firstFatal ?? errors.firstError {
            return "line \(e.line), column \(e.column): \(describe(e))"
        }
        // Backstop: libxml2 reports a document that just stops, but check anyway.
        if let unclosed = state.openElements.last {
            return "line \(xmlTextReaderGetParserLineNumber(reader)), column \(xmlTextReaderGetParserColumnNumber(reader)): "
                + "the document ends inside <\(unclosed)>"
        }
        return nil
    }

    private static func string(_ p: UnsafePointer<xmlChar>?) -> String {
        p.map { String(cString: $0) } ?? ""
    }

    /// The reason part of the message: our wording for the mistakes truncated or
    /// hand-written reports usually have, libxml2's own for the rest, and the code always.
    private static func describe(_ e: ErrorSink.Record) -> String {
        // libxml2 2.9 calls a document that stops inside an element "extra content at the end
        // of the document" (5); later versions say "premature end of data in tag" (77).
        if e.code == 5 || e.code == 77, let unclosed = e.innermost {
            return "the document ends inside <\(unclosed)>"
        }
        if let known = libxml2Messages[e.code] { return known + " (XML error \(e.code))" }
        let own = e.message.trimmingXMLSpace()
        // libxml2's size and depth guards (kept: XML_PARSE_HUGE would lift its entity
        // guards too) report generic codes, and suggest an option report authors cannot set.
        if let limit = limitMessages.first(where: { own.contains($0.key) }) { return limit.value + " (XML error \(e.code))" }
        return (own.isEmpty ? "not well-formed XML" : own) + " (XML error \(e.code))"
    }

    /// Fragments of libxml2 2.9-2.13 messages for its limits, and what to say instead.
    /// Matched on text because the codes are generic; unmatched messages pass through.
    private static let limitMessages: KeyValuePairs<String, String> = [
        "Excessive depth": "elements nested deeper than libxml2's limit of 256 levels",
        "huge text node": "one text or CDATA section longer than libxml2's 10 MB limit",
        "Huge input lookup": "one text, CDATA section, attribute or tag longer than libxml2's 10 MB limit",
    ]

    /// libxml2 error codes (`xmlParserErrors`) with wording for report authors.
    private static let libxml2Messages: [Int: String] = [
        4: "the document is empty", 5: "extra content after the root element",
        9: "invalid character (not UTF-8 or not allowed in XML)", 23: "entity reference without ';'",
        26: "undeclared entity", 38: "'<' inside an attribute value", 39: "attribute value not started",
        40: "attribute value not finished", 41: "attribute without a value", 42: "attribute given twice",
        45: "comment not finished", 63: "CDATA section not finished", 65: "space required",
        68: "name required", 73: "'>' expected", 76: "mismatched end tag", 77: "the document ends inside a tag",
        85: "elements not balanced",
    ]
}

/// Collects what libxml2 reports through the structured error handler. Lives for one read
/// on one thread; the handler gets it back from an unretained pointer.
private final class ErrorSink {
    struct Record {
        var line: Int
        var column: Int
        var code: Int
        var message: String
        /// The innermost element still open when the error was raised.
        var innermost: String?
    }

    /// The first well-formedness error: the one that stopped the reader.
    private(set) var firstFatal: Record?
    /// The first error of any level above warning (namespace errors do not stop the reader).
    private(set) var firstError: Record?
    /// The document's root element as parsed so far, for the wrong-root message.
    private(set) var root: String?

    func record(_ e: xmlError) {
        guard e.level.rawValue >= XML_ERR_ERROR.rawValue else { return }  // warnings are ignored
        let isFatal = e.level.rawValue >= XML_ERR_FATAL.rawValue
        guard firstError == nil || (isFatal && firstFatal == nil) else { return }
        var record = Record(line: Int(e.line), column: Int(e.int2), code: Int(e.code),
                            message: e.message.map { String(cString: $0) } ?? "", innermost: nil)
        // Parser errors carry the parser context: its element stack names what a truncated
        // document left open (libxml2 2.9's message does not), and its tree has the root.
        if e.domain == Int32(XML_FROM_PARSER.rawValue), let raw = e.ctxt {
            let ctxt = raw.assumingMemoryBound(to: xmlParserCtxt.self)
            let depth = Int(ctxt.pointee.nameNr)
            if depth > 0, let names = ctxt.pointee.nameTab, let name = names[depth - 1] {
                record.innermost = String(cString: name)
            }
            if root == nil, let doc = ctxt.pointee.myDoc, let element = xmlDocGetRootElement(doc) {
                root = Self.qualifiedName(element)
            }
        }
        if firstError == nil { firstError = record }
        if isFatal { firstFatal = record }
    }

    private static func qualifiedName(_ node: xmlNodePtr) -> String? {
        guard let name = node.pointee.name else { return nil }
        let local = String(cString: name)
        guard let prefix = node.pointee.ns?.pointee.prefix else { return local }
        return String(cString: prefix) + ":" + local
    }
}

private extension String {
    /// Trims the white space libxml2 puts around its messages (a trailing newline).
    /// File-local: FoundationEssentials has no `trimmingCharacters(in:)`.
    func trimmingXMLSpace() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return String(self[first...last])
    }
}
