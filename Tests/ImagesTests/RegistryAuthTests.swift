import Foundation
import Testing
@testable import Images

@Test func bearerChallengesParseWithQuotedParameters() {
    let c = AuthChallenge.parse(#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#)
    #expect(c?.scheme == "bearer")
    #expect(c?.parameters["realm"] == "https://auth.docker.io/token")
    #expect(c?.parameters["service"] == "registry.docker.io")
    #expect(c?.parameters["scope"] == "repository:library/alpine:pull")
    #expect(AuthChallenge.parse(#"Basic realm="Registry Realm""#) == AuthChallenge(scheme: "basic", parameters: ["realm": "Registry Realm"]))
    #expect(AuthChallenge.parse("") == nil)
}

@Test func dockerConfigLoginsAreReadByRegistry() throws {
    let json = #"{"auths": {"https://index.docker.io/v1/": {"auth": "\#(Data("u:p:w".utf8).base64EncodedString())"}, "127.0.0.1:5000": {"auth": "\#(Data("a:b".utf8).base64EncodedString())"}, "bad": {"auth": "!!"}}}"#
    let c = try RegistryCredentials.parse(Array(json.utf8), file: "config.json")
    #expect(c.login(for: "docker.io") == .init(user: "u", password: "p:w"))
    #expect(c.login(for: "127.0.0.1:5000") == .init(user: "a", password: "b"))
    #expect(c.login(for: "bad") == nil)
    #expect(c.login(for: "ghcr.io") == nil)
}

@Test func aMissingCredentialsFileMeansNoLogins() throws {
    let c = try RegistryCredentials.load(environment: ["REGISTRY_AUTH_FILE": "/nonexistent/auth.json"])
    #expect(c.auths.isEmpty)
}

@Test func queryValuesArePercentEncoded() {
    #expect(queryEncoded("repository:a/b:pull") == "repository%3Aa%2Fb%3Apull")
}
