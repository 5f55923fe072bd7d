import AgentSupport
import Testing

@Suite struct PathTextTests {
    @Test func components() {
        #expect("/a/b/c.json".lastPathComponent == "c.json")
        #expect("/a/b/".lastPathComponent == "b")
        #expect("/".lastPathComponent == "/")
        #expect("c".lastPathComponent == "c")
        #expect("/a/b/c".deletingLastPathComponent == "/a/b")
        #expect("/a".deletingLastPathComponent == "/")
        #expect("c".deletingLastPathComponent == "")
        #expect("/a/".appendingPathComponent("b") == "/a/b")
    }

    @Test func lexicalNormalization() {
        #expect("/a/./b/../c//d/".lexicallyNormalizedPath() == "/a/c/d")
        #expect("x/../y".lexicallyNormalizedPath(relativeTo: "/base") == "/base/y")
        #expect("/../..".lexicallyNormalizedPath() == "/")
    }

    @Test func textHelpers() {
        #expect("  a b\t".trimmingWhitespace() == "a b")
        #expect("\n a \n".trimmingWhitespaceAndNewlines() == "a")
        #expect("\n a \n".trimmingWhitespace() == "\n a \n")
        #expect(hexDigits(10, width: 4) == "000a")
        #expect(fixedPoint(1.23456, decimals: 2) == "1.23")
        #expect(jsonQuoted("a\"\u{1}\u{7F}") == "\"a\\\"\\u0001\\u007f\"")
    }
}
