//! The egress guard: the one door for every outbound request a tenant or a
//! model can aim (`http_fetch`, HTTP tools, tenant MCP servers over HTTP).
//!
//! Names are resolved by the guard itself and only addresses that pass are
//! handed to the connector, so the address checked is the address connected
//! to (no DNS rebinding between check and connect). IP literals are checked
//! after the URL parser has normalised them (`2130706433`, `0x7f000001`,
//! `127.1`, `[::ffff:7f00:1]` all become the loopback address they are), and
//! every redirect hop is checked again. Refused: loopback, unspecified,
//! link-local, private, shared (CGNAT), unique-local, multicast, broadcast
//! and reserved ranges, IPv4 embedded in IPv6 (mapped, compatible, NAT64,
//! 6to4), the host's own interface addresses, and always agentd's own
//! listen address. The operator may allow ranges, addresses or hosts per
//! tenant (`[egress]` in `agentd.toml`); nothing allows reaching agentd.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::Duration;

/// Why an outbound request was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum EgressError {
    #[error("egress refused: {0} is agentd's own address")]
    OwnAddress(SocketAddr),
    #[error("egress refused: {0} is on the operator's deny list")]
    Denied(SocketAddr),
    #[error("egress refused: {host} resolves to {addr} ({class} address; the operator can allow it in [egress])")]
    Internal { host: String, addr: IpAddr, class: &'static str },
    #[error("egress refused: {0}")]
    BadUrl(String),
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, String),
}

/// One allow-list entry: a CIDR range, an address (optionally with a port)
/// or a host name (optionally with a port).
#[derive(Debug, Clone, PartialEq)]
enum Allow {
    Net(ipnet::IpNet, Option<u16>),
    Host(String, Option<u16>),
}

impl Allow {
    fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(n) = s.parse::<ipnet::IpNet>() {
            return Ok(Allow::Net(n, None));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Allow::Net(ipnet::IpNet::from(ip), None));
        }
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(Allow::Net(ipnet::IpNet::from(sa.ip()), Some(sa.port())));
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| format!("bad port in egress entry {s:?}"))?)),
            None => (s, None),
        };
        let ok = !host.is_empty()
            && host.len() <= 253
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !ok {
            return Err(format!("egress entry {s:?} is not a CIDR range, an address or a host name"));
        }
        Ok(Allow::Host(host.to_ascii_lowercase(), port))
    }

    fn permits(&self, host: &str, addr: &SocketAddr) -> bool {
        match self {
            Allow::Net(n, port) => n.contains(&canonical(addr.ip())) && port.is_none_or(|p| p == addr.port()),
            Allow::Host(h, port) => h.eq_ignore_ascii_case(host) && port.is_none_or(|p| p == addr.port()),
        }
    }
}

/// The operator's egress settings (`[egress]`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct EgressConfig {
    /// Allowed for every tenant.
    pub allow: Vec<String>,
    /// Refused for every tenant, whatever `allow` says (other agentd nodes,
    /// databases, metadata services inside allowed ranges).
    pub deny: Vec<String>,
    /// Per organisation: more allowed destinations, and whether its stdio
    /// MCP servers may have a network at all.
    pub orgs: BTreeMap<String, OrgEgress>,
}

/// One organisation's egress settings.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct OrgEgress {
    pub allow: Vec<String>,
    pub mcp_network: bool,
}

struct State {
    all: Vec<Allow>,
    deny: Vec<Allow>,
    orgs: HashMap<String, (Vec<Allow>, bool)>,
    own: Vec<SocketAddr>,
}

static STATE: LazyLock<RwLock<State>> =
    LazyLock::new(|| RwLock::new(State { all: vec![], deny: vec![], orgs: HashMap::new(), own: vec![] }));
static CLIENTS: LazyLock<Mutex<HashMap<String, reqwest::Client>>> = LazyLock::new(Default::default);

/// Installs the operator's settings; an invalid entry is an error naming it.
pub fn configure(cfg: &EgressConfig) -> Result<(), String> {
    let all = cfg.allow.iter().map(|s| Allow::parse(s)).collect::<Result<Vec<_>, _>>()?;
    let deny = cfg.deny.iter().map(|s| Allow::parse(s)).collect::<Result<Vec<_>, _>>()?;
    let mut orgs = HashMap::new();
    for (org, o) in &cfg.orgs {
        let list = o.allow.iter().map(|s| Allow::parse(s)).collect::<Result<Vec<_>, _>>()?;
        orgs.insert(org.clone(), (list, o.mcp_network));
    }
    let mut st = STATE.write().unwrap_or_else(|e| e.into_inner());
    st.all = all;
    st.deny = deny;
    st.orgs = orgs;
    CLIENTS.lock().unwrap_or_else(|e| e.into_inner()).clear();
    Ok(())
}

/// Records an address agentd listens on; nothing may connect to it.
pub fn add_own_address(addr: SocketAddr) {
    STATE.write().unwrap_or_else(|e| e.into_inner()).own.push(addr);
}

/// Whether the operator lets this organisation's stdio MCP servers use the network.
pub fn mcp_network_allowed(org: &str) -> bool {
    STATE.read().unwrap_or_else(|e| e.into_inner()).orgs.get(org).is_some_and(|o| o.1)
}

/// IPv4 hidden in an IPv6 address (mapped, compatible, NAT64, 6to4) as the
/// IPv4 address it reaches; everything else unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let o = v6.octets();
    // ::a.b.c.d (deprecated "compatible"), but not :: or ::1.
    if s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1) {
        return IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    // 64:ff9b::/96 NAT64 and 64:ff9b:1::/48 local-use NAT64.
    if s[0] == 0x64 && s[1] == 0xff9b {
        return IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    // 2002::/16 6to4: the IPv4 address is in the next 32 bits.
    if s[0] == 0x2002 {
        return IpAddr::V4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    ip
}

/// The class of a non-public address, or `None` for a public one.
pub fn internal_class(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            Some(match o {
                _ if v4.is_loopback() => "loopback",
                [0, ..] => "unspecified",
                _ if v4.is_private() => "private",
                _ if v4.is_link_local() => "link-local",
                [100, b, ..] if (64..128).contains(&b) => "shared (CGNAT)",
                [192, 0, 0, _] => "reserved",
                [198, b, ..] if b == 18 || b == 19 => "benchmarking",
                _ if v4.is_multicast() => "multicast",
                _ if v4.is_broadcast() => "broadcast",
                [a, ..] if a >= 240 => "reserved",
                _ => return None,
            })
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            Some(match s[0] {
                _ if v6.is_loopback() => "loopback",
                _ if v6.is_unspecified() => "unspecified",
                x if x & 0xfe00 == 0xfc00 => "unique-local",
                x if x & 0xffc0 == 0xfe80 => "link-local",
                x if x & 0xffc0 == 0xfec0 => "site-local",
                x if x & 0xff00 == 0xff00 => "multicast",
                0x100 if s[1..4] == [0, 0, 0] => "discard",
                // Translation and tunnelling prefixes can carry an internal
                // IPv4 in layouts `canonical` does not unpack: refused whole.
                0x64 if s[1] == 0xff9b => "NAT64",
                0 if s[1..4] == [0, 0, 0] && s[4] == 0xffff && s[5] == 0 => "IPv4-translated (SIIT)",
                0x2001 if s[1] == 0 => "Teredo",
                _ => return None,
            })
        }
    }
}

/// Addresses of this host's interfaces (refused like loopback: the host itself).
fn local_addresses() -> Vec<IpAddr> {
    static CACHE: LazyLock<Mutex<(Option<std::time::Instant>, Vec<IpAddr>)>> = LazyLock::new(Default::default);
    let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if c.0.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
        return c.1.clone();
    }
    let mut out = vec![];
    let mut ifs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we walk read-only and free once.
    if unsafe { libc::getifaddrs(&mut ifs) } == 0 {
        let mut p = ifs;
        while !p.is_null() {
            // SAFETY: `p` points into the list getifaddrs returned.
            let ifa = unsafe { &*p };
            if !ifa.ifa_addr.is_null() {
                // SAFETY: the family says which sockaddr the pointer holds.
                let fam = unsafe { (*ifa.ifa_addr).sa_family } as i32;
                if fam == libc::AF_INET {
                    let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr))));
                } else if fam == libc::AF_INET6 {
                    let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    out.push(IpAddr::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr)));
                }
            }
            p = ifa.ifa_next;
        }
        // SAFETY: freeing the list getifaddrs allocated, once.
        unsafe { libc::freeifaddrs(ifs) };
    }
    *c = (Some(std::time::Instant::now()), out.clone());
    out
}

/// Checks one address `host` resolved to, for organisation `org`.
pub fn check_addr(org: &str, host: &str, addr: SocketAddr) -> Result<(), EgressError> {
    let st = STATE.read().unwrap_or_else(|e| e.into_inner());
    let ip = canonical(addr.ip());
    let local = local_addresses();
    let is_local = |x: IpAddr| x.is_loopback() || x.is_unspecified() || local.contains(&x);
    for own in &st.own {
        let same_ip = canonical(own.ip()) == ip || (own.ip().is_unspecified() && is_local(ip));
        if own.port() == addr.port() && (same_ip || (is_local(ip) && is_local(canonical(own.ip())))) {
            return Err(EgressError::OwnAddress(addr));
        }
    }
    let allowed = |list: &[Allow]| list.iter().any(|a| a.permits(host, &addr));
    if allowed(&st.deny) {
        return Err(EgressError::Denied(addr));
    }
    if allowed(&st.all) || st.orgs.get(org).is_some_and(|(l, _)| allowed(l)) {
        return Ok(());
    }
    let class = internal_class(ip).or_else(|| local.contains(&ip).then_some("local interface"));
    match class {
        Some(class) => Err(EgressError::Internal { host: host.to_string(), addr: ip, class }),
        None => Ok(()),
    }
}

/// Checks a URL before a request (and at each redirect): scheme, and the
/// address when the host is an IP literal (names are checked on resolution).
pub fn check_url(org: &str, url: &reqwest::Url) -> Result<(), EgressError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EgressError::BadUrl(format!("only http and https are allowed, not {}", url.scheme())));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EgressError::BadUrl("URLs with credentials are not allowed".into()));
    }
    let port = url.port_or_known_default().unwrap_or(80);
    match url.host() {
        Some(url::Host::Ipv4(ip)) => check_addr(org, &ip.to_string(), SocketAddr::new(IpAddr::V4(ip), port)),
        Some(url::Host::Ipv6(ip)) => check_addr(org, &ip.to_string(), SocketAddr::new(IpAddr::V6(ip), port)),
        Some(url::Host::Domain(d)) => {
            // A name that is really a number the resolver would read as an address.
            if d.parse::<IpAddr>().is_ok() || d.trim_end_matches('.').chars().all(|c| c.is_ascii_digit() || c == '.') {
                return Err(EgressError::BadUrl(format!("{d:?} is not a host name")));
            }
            Ok(())
        }
        None => Err(EgressError::BadUrl("the URL has no host".into())),
    }
}

/// How long a name may take to resolve.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves on the tool pool (bounded per organisation and overall, so a
/// slow nameserver cannot take every thread) with a time limit.
async fn lookup(org: &str, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
    let name = host.to_string();
    let work = crate::pool::run_blocking(org, move || {
        std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port)).map(|a| a.collect::<Vec<_>>())
    });
    match tokio::time::timeout(DNS_TIMEOUT, work).await {
        Err(_) => Err(EgressError::Resolve(host.into(), format!("no answer within {} s", DNS_TIMEOUT.as_secs()))),
        Ok(Err(e)) => Err(EgressError::Resolve(host.into(), e)),
        Ok(Ok(Err(e))) => Err(EgressError::Resolve(host.into(), e.to_string())),
        Ok(Ok(Ok(found))) => Ok(found),
    }
}

/// The addresses `host` resolves to that pass the guard; the last refusal
/// when none does.
async fn resolve_checked(org: &str, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
    let (mut ok, mut last) = (vec![], None);
    for a in lookup(org, host, port).await? {
        match check_addr(org, host, a) {
            Ok(()) => ok.push(a),
            Err(e) => last = Some(e),
        }
    }
    if ok.is_empty() {
        return Err(last.unwrap_or_else(|| EgressError::Resolve(host.to_string(), "no addresses".into())));
    }
    Ok(ok)
}

/// Resolves names itself and hands the connector only addresses that pass.
struct GuardResolver {
    org: String,
}

impl reqwest::dns::Resolve for GuardResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let org = self.org.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            // No port is known here: pinned clients never come this way for
            // their own host; this is the net under them.
            let ok = resolve_checked(&org, &host, 0)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A resolver for `org` that hands the connector only addresses that pass
/// the guard (for long-lived clients, such as providers tenants add).
pub fn resolver(org: &str) -> Arc<dyn reqwest::dns::Resolve> {
    Arc::new(GuardResolver { org: org.to_string() })
}

/// Checks a URL and, for a host name, that it resolves (with the URL's
/// port) to addresses that pass: an early, clear refusal before a client is
/// kept for it.
pub async fn check_destination(org: &str, url: &reqwest::Url) -> Result<(), EgressError> {
    check_url(org, url)?;
    if let Some(url::Host::Domain(d)) = url.host() {
        resolve_checked(org, d, url.port_or_known_default().unwrap_or(80)).await?;
    }
    Ok(())
}

/// A client for one URL of `org`: the host is resolved here, with the real
/// port, every address checked, and the client pinned to the addresses that
/// passed (reqwest connects to nothing else; it follows no redirects and
/// any other name goes through the guard's resolver). Clients are reused
/// while a host keeps resolving to the same addresses.
pub async fn pinned_client(org: &str, url: &reqwest::Url) -> Result<reqwest::Client, EgressError> {
    check_url(org, url)?;
    let port = url.port_or_known_default().unwrap_or(80);
    let mut pin: Option<(String, Vec<SocketAddr>)> = None;
    if let Some(url::Host::Domain(d)) = url.host() {
        let mut ok = resolve_checked(org, d, port).await?;
        ok.sort();
        pin = Some((d.to_string(), ok));
    }
    let key = format!("{org}\n{pin:?}");
    let mut m = CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = m.get(&key) {
        return Ok(c.clone());
    }
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(GuardResolver { org: org.to_string() }))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent("agentd");
    if let Some((host, addrs)) = &pin {
        b = b.resolve_to_addrs(host, addrs);
    }
    let c = b.build().map_err(|e| EgressError::BadUrl(format!("cannot build a client: {e}")))?;
    if m.len() > 512 {
        m.clear();
    }
    m.insert(key, c.clone());
    Ok(c)
}

/// Most redirects [`send`] follows.
pub const MAX_REDIRECTS: usize = 5;

/// Sends a request through the guard and, with `follow`, follows redirects
/// itself, checking every hop like the first. `build` adds headers and the
/// body to each hop's request (`true` while the body still applies: a 303,
/// or a 301/302 answering a POST, turns the next hop into a bodiless GET).
pub async fn send(
    org: &str,
    method: reqwest::Method,
    url: reqwest::Url,
    follow: bool,
    build: impl Fn(reqwest::RequestBuilder, bool) -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, String> {
    let (mut method, mut url, mut with_body) = (method, url, true);
    for _ in 0..=MAX_REDIRECTS {
        let client = pinned_client(org, &url).await.map_err(|e| e.to_string())?;
        let resp = build(client.request(method.clone(), url.clone()), with_body).send().await.map_err(describe)?;
        if let Some(addr) = resp.remote_addr() {
            check_addr(org, url.host_str().unwrap_or_default(), addr).map_err(|e| e.to_string())?;
        }
        let status = resp.status();
        let location = resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
        let (true, true, Some(location)) = (follow, status.is_redirection(), location) else { return Ok(resp) };
        url = url.join(location).map_err(|e| format!("bad redirect location: {e}"))?;
        if status == reqwest::StatusCode::SEE_OTHER
            || (matches!(status.as_u16(), 301 | 302) && method == reqwest::Method::POST)
        {
            (method, with_body) = (reqwest::Method::GET, false);
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

/// A request error as one line, with the guard's refusal when it was one.
pub fn describe(e: reqwest::Error) -> String {
    use std::error::Error;
    let mut src: Option<&dyn Error> = Some(&e);
    while let Some(s) = src {
        if let Some(g) = s.downcast_ref::<EgressError>() {
            return g.to_string();
        }
        src = s.source();
    }
    if e.is_timeout() {
        return "no answer in time".into();
    }
    format!("request failed: {}", e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_verdict(u: &str) -> Result<(), EgressError> {
        let url = reqwest::Url::parse(u).map_err(|e| EgressError::BadUrl(e.to_string()))?;
        check_url("acme", &url)
    }

    #[test]
    fn every_spelling_of_an_internal_address_is_refused() {
        // Hardening finding 4: each of these was fetched without approval.
        for u in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://0/",
            "http://0.0.0.0:7700/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[64:ff9b:1:7f00:1::]/",
            "http://[::ffff:0:7f00:1]/",
            "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://user:pw@example.com/",
            "ftp://example.com/",
        ] {
            assert!(url_verdict(u).is_err(), "{u} must be refused");
        }
        // `\@` does not smuggle a second host past the parser: the host is the part before it.
        let u = reqwest::Url::parse("http://example.com\\@127.0.0.1/").unwrap();
        assert_eq!(u.host_str(), Some("example.com"));
        assert!(url_verdict("https://example.com/x").is_ok());
        assert!(url_verdict("http://93.184.216.34/").is_ok());
    }

    #[test]
    fn names_are_checked_by_the_address_they_resolve_to() {
        let refused = check_addr("acme", "localhost", "127.0.0.1:80".parse().unwrap());
        assert!(matches!(refused, Err(EgressError::Internal { class: "loopback", .. })), "{refused:?}");
        assert!(check_addr("acme", "x", "[::ffff:10.0.0.1]:80".parse().unwrap()).is_err());
        assert!(check_addr("acme", "example.com", "93.184.216.34:443".parse().unwrap()).is_ok());
    }

    #[test]
    fn the_deny_list_wins_over_allow() {
        let cfg = EgressConfig {
            allow: vec!["198.51.100.0/24".into()],
            deny: vec!["198.51.100.7".into()],
            ..Default::default()
        };
        configure(&cfg).unwrap();
        assert!(matches!(check_addr("x", "h", "198.51.100.7:80".parse().unwrap()), Err(EgressError::Denied(_))));
        assert!(check_addr("x", "h", "198.51.100.8:80".parse().unwrap()).is_ok());
        configure(&EgressConfig::default()).unwrap();
    }

    #[test]
    fn allow_entries_parse_and_match() {
        let a = Allow::parse("127.0.0.1:8080").unwrap();
        assert!(a.permits("127.0.0.1", &"127.0.0.1:8080".parse().unwrap()));
        assert!(!a.permits("127.0.0.1", &"127.0.0.1:8081".parse().unwrap()));
        let n = Allow::parse("10.0.0.0/8").unwrap();
        assert!(n.permits("h", &"[::ffff:10.9.9.9]:1".parse().unwrap()));
        let h = Allow::parse("intranet.local").unwrap();
        assert!(h.permits("INTRANET.local", &"10.0.0.5:443".parse().unwrap()));
        assert!(Allow::parse("bad host!").is_err());
    }
}
