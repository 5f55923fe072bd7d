import AgentSupport
import Testing

@Suite struct JSONReaderTests {
    func parse(_ text: String) throws(JSONSyntaxError) -> JSONValue { try JSONReader.parse(Array(text.utf8)) }

    func failure(_ text: String) -> String? {
        do { _ = try parse(text); return nil } catch { return error.description }
    }

    @Test func readsEveryKindOfValue() throws {
        let v = try parse(#"{"s":"a\"b\u00e9\ud83d\ude00","t":true,"f":false,"n":null,"u":18446744073709551615,"i":-3,"d":1.5e2,"a":[1,[]],"o":{}}"#)
        #expect(v == .object([
            "s": .string("a\"bé😀"), "t": .bool(true), "f": .bool(false), "n": .null,
            "u": .unsigned(.max), "i": .signed(-3), "d": .double(150), "a": .array([.unsigned(1), .array([])]), "o": .object([:]),
        ]))
    }

    @Test func errorsNameLineAndColumn() {
        #expect(failure("{\"version\": 1,\n  \"steps\": ]}") == "Invalid value at line 2, column 12")
        #expect(failure("{\"a\": \"é\" x}") == "Expected ',' or '}' after an object member at line 1, column 11")
        #expect(failure("") == "Unexpected end of the document at line 1, column 1")
        #expect(failure("{} {}") == "Unexpected text after the document at line 1, column 4")
    }

    @Test func refusesWhatJSONDoesNotAllow() {
        #expect(failure("[1,]")?.hasPrefix("Invalid value") == true)
        #expect(failure("{\"a\":1,}")?.hasPrefix("Expected a key") == true)
        #expect(failure("[01]")?.hasPrefix("Invalid number") == true)
        #expect(failure("[\"\\q\"]")?.hasPrefix("Invalid escape sequence") == true)
        #expect(failure("[\"a\tb\"]")?.hasPrefix("Unescaped control character") == true)
        #expect(failure("[\"\\ud800\"]")?.hasPrefix("Unpaired surrogate") == true)
        #expect(failure("[\"abc]")?.hasPrefix("Unterminated string") == true)
        #expect(failure("[tru]")?.hasPrefix("Invalid value") == true)
        #expect(failure("[1e999]")?.hasPrefix("Number out of range") == true)
    }

    @Test func duplicateKeysAreErrorsAtTheSecondKey() {
        #expect(failure("{\"a\": 1,\n \"a\": 2}") == "Duplicate key \"a\" at line 2, column 2")
    }

    @Test func invalidUTF8IsRefused() {
        #expect(throws: JSONSyntaxError.self) { try JSONReader.parse([0x22, 0xFF, 0x22]) }
    }

    @Test func deepNestingIsRefusedNotCrashed() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(failure(deep)?.hasPrefix("Nesting deeper than 512 levels") == true)
        let ok = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(failure(ok) == nil)
    }

    @Test func byteOrderMarkIsTolerated() throws {
        #expect(try JSONReader.parse([0xEF, 0xBB, 0xBF] + Array("[]".utf8)) == .array([]))
    }
}
