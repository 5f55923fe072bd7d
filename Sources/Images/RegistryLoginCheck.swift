import FoundationEssentials

extension RegistryClient {
    /// Checks a login the way `docker login` does: `GET /v2/`; a registry that asks for
    /// nothing accepts it; otherwise the challenge is answered with the login (Basic, or a
    /// token from the Bearer realm for no repository in particular) and `GET /v2/` must
    /// then succeed. Throws `unauthorized` naming the registry when the login is refused.
    public func verifyLogin() throws(ImageError) {
        let first = try call("GET /v2/") { () throws(HTTPError) in try http.get(base, maxBytes: 64 << 10) }
        if first.status == 200 { return }
        guard first.status == 401 else {
            throw .registry(registry: registry, what: "GET /v2/", status: first.status, detail: "")
        }
        let header = first.headers["www-authenticate"] ?? ""
        let authorization: String
        do throws(ImageError) {
            authorization = try answer(header)
        } catch {
            throw .unauthorized(registry: registry, challenge: header + "; the login was refused (\(error))")
        }
        let again = try call("GET /v2/") { () throws(HTTPError) in try http.get(base, headers: [authorization], maxBytes: 64 << 10) }
        guard again.status == 200 else {
            throw .unauthorized(registry: registry, challenge: header + "; the login was refused (GET /v2/ answered \(again.status))")
        }
    }
}
