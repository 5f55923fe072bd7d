import Testing
@testable import AgentCore

/// Pure matching logic of `GlobPattern`/`GlobMatcher`, no files involved.
@Suite struct ArtifactGlobTests {
    /// Whether `path` is matched by `pattern` (as a whole, not through a parent folder).
    static func matches(_ pattern: String, _ path: String, dotfiles: Bool = false) throws -> Bool {
        let matcher = GlobMatcher(try GlobPattern(pattern), matchDotfiles: dotfiles)
        var state = matcher.start
        for name in path.split(separator: "/") { state = matcher.step(state, String(name)) }
        return matcher.isMatch(state)
    }

    @Test func segmentsWildcards() throws {
        #expect(try Self.matches("build/*.tar.gz", "build/app.tar.gz"))
        #expect(try !Self.matches("build/*.tar.gz", "build/sub/app.tar.gz"))  // * stays in its segment
        #expect(try Self.matches("build/app?.o", "build/app1.o"))
        #expect(try Self.matches("build/[ab]*.o", "build/b.o"))
        #expect(try !Self.matches("build/[ab]*.o", "build/c.o"))
        #expect(try Self.matches("build/\\*literal", "build/*literal"))
    }

    @Test func doubleStar() throws {
        #expect(try Self.matches("**/*.xml", "a.xml"))  // zero segments
        #expect(try Self.matches("**/*.xml", "a/b/c/d.xml"))
        #expect(try Self.matches("a/**/z", "a/z"))
        #expect(try Self.matches("a/**/z", "a/b/c/z"))
        #expect(try !Self.matches("a/**/z", "b/z"))
        #expect(try Self.matches("dist/**", "dist/x"))
        #expect(try !Self.matches("dist/**", "dist"))  // a trailing ** is below its folder
        #expect(try Self.matches("**", "anything"))
    }

    @Test func dotfilesNeedALeadingDotUnlessExcluding() throws {
        #expect(try !Self.matches("*", ".env"))
        #expect(try !Self.matches("**/*.txt", ".cache/a.txt"))
        #expect(try !Self.matches("**/*.txt", "a/.b.txt"))
        #expect(try Self.matches(".*", ".env"))
        #expect(try Self.matches("**/.env", "a/b/.env"))
        #expect(try Self.matches(".cache/**", ".cache/a.txt"))
        #expect(try Self.matches("**/*.txt", ".cache/a.txt", dotfiles: true))
    }

    @Test func normalisationAndRejection() throws {
        #expect(try GlobPattern("./dist//app/").segments == [.literal("dist"), .literal("app")])
        #expect(try GlobPattern("a/**/**/b").segments == [.literal("a"), .anyDepth, .literal("b")])
        #expect(try GlobPattern("a/b/*.o").literalPrefix == ["a", "b"])
        #expect(try GlobPattern("a/b").isLiteral)
        #expect(throws: GlobPatternError(pattern: "a/../b", reason: "\"..\" is not allowed (it would leave the workspace)")) {
            try GlobPattern("a/../b")
        }
        #expect(throws: GlobPatternError.self) { try GlobPattern("/abs/*") }
    }

    @Test func excludesPruneFolders() throws {
        let matcher = GlobMatcher(try GlobPattern("dist/tmp"), matchDotfiles: true)
        #expect(matcher.matchesPathOrParent(["dist", "tmp", "x", "y"]))
        #expect(!matcher.matchesPathOrParent(["dist", "tmpx"]))
    }

    @Test func pruningKnowsWhenNothingMoreCanMatch() throws {
        let matcher = GlobMatcher(try GlobPattern("src/*/gen/*.c"), matchDotfiles: false)
        let other = matcher.step(matcher.start, "docs")
        #expect(other.isEmpty)
        let src = matcher.step(matcher.start, "src")
        #expect(matcher.canContinue(src))
    }
}
