//! The host a URL names, read the way an HTTP client reaches it (the WHATWG URL rules that
//! browsers, curl and most HTTP libraries follow for http, https, ws, wss and ftp), so that a rule's
//! host glob sees the host that would be contacted, not a look-alike: a backslash ends the
//! authority (`http://evil.org\@good.com` reaches evil.org), user info runs to the last `@`,
//! percent-escapes in the host are decoded (`%65vil.org`), tabs and newlines are dropped, and
//! numeric IPv4 forms are written as a dotted quad (`127.1`, `2130706433`, `0x7f.1` are all
//! `127.0.0.1`), and an IPv4-mapped IPv6 address as its IPv4 one (`[::ffff:169.254.169.254]`). A
//! bare `host[:port]` (a `net_send` host) is read as the authority itself. What a client would
//! still map further (UTS46: full-width letters, ideographic full stops, soft hyphens) is not
//! mapped here: [`plain_host`] tells such a host apart, and the rules layer refuses it.

use alloc::string::String;
use alloc::vec::Vec;

/// Schemes whose authority follows any run of `/` and `\` after the colon.
const SPECIAL_SCHEMES: [&str; 5] = ["http", "https", "ws", "wss", "ftp"];

/// The lowercase host of a URL (or of a bare `host[:port]`).
pub fn host_of(url: &str) -> String {
    let cleaned: String = url
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let (rest, backslash_ends) = after_scheme(&cleaned);
    let authority_end = rest
        .find(|c: char| matches!(c, '/' | '?' | '#') || (backslash_ends && c == '\\'))
        .unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if let Some(v6) = host_port.strip_prefix('[') {
        let literal = v6.split(']').next().unwrap_or("");
        return match literal.parse::<core::net::Ipv6Addr>() {
            Ok(addr) => match addr.to_ipv4_mapped() {
                Some(v4) => alloc::format!("{v4}"),
                None => alloc::format!("{addr}"),
            },
            Err(_) => literal.to_ascii_lowercase(),
        };
    }
    let host = host_port.split(':').next().unwrap_or("");
    let host = percent_decode(host).to_lowercase();
    let host = host.trim_end_matches('.');
    ipv4_dotted(host).unwrap_or_else(|| host.into())
}

/// Whether `host` (from [`host_of`]) is one a rule's glob can judge: a non-empty name of ASCII
/// letters, digits, `-`, `_` and `.` (international names in their `xn--` form), or an IP address.
/// Anything else (full-width letters, an ideographic full stop, a soft hyphen, an empty host) an
/// HTTP client may map to a host no rule names.
pub fn plain_host(host: &str) -> bool {
    host.parse::<core::net::Ipv6Addr>().is_ok()
        || (!host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
}

/// What follows the scheme (and, for a special scheme, its slashes), and whether a backslash ends
/// the authority there. Without a recognised scheme the text is a bare authority.
fn after_scheme(url: &str) -> (&str, bool) {
    if let Some((scheme, rest)) = url.split_once(':') {
        let scheme = scheme.to_ascii_lowercase();
        if SPECIAL_SCHEMES.contains(&scheme.as_str()) {
            return (rest.trim_start_matches(['/', '\\']), true);
        }
        let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if let Some(authority) = rest.strip_prefix("//").filter(|_| valid) {
            return (authority, false);
        }
    }
    (url, true)
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.into();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `host` as a dotted quad when it is an IPv4 address in any form the WHATWG parser takes (one to
/// four parts, each decimal, `0x` hex or `0` octal, the last filling the remaining bytes).
fn ipv4_dotted(host: &str) -> Option<String> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let numbers = parts
        .iter()
        .map(|p| ipv4_number(p))
        .collect::<Option<Vec<u64>>>()?;
    let (last, leading) = numbers.split_last()?;
    if leading.iter().any(|&n| n > 255) || *last >= 1u64 << (8 * (5 - numbers.len())) {
        return None;
    }
    let mut address = *last;
    for (i, &n) in leading.iter().enumerate() {
        address += n << (8 * (3 - i));
    }
    let [_, _, _, _, a, b, c, d] = address.to_be_bytes();
    Some(alloc::format!("{a}.{b}.{c}.{d}"))
}

fn ipv4_number(part: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        return (radix == 16).then_some(0);
    }
    if digits.len() > 20 || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_urls_and_bare_hosts() {
        assert_eq!(
            host_of("https://user:pw@API.Example.com:8443/x?y"),
            "api.example.com"
        );
        assert_eq!(host_of("example.org"), "example.org");
        assert_eq!(host_of("example.org:8080"), "example.org");
        assert_eq!(host_of("198.51.100.23"), "198.51.100.23");
        assert_eq!(host_of("http://[::1]:80/"), "::1");
        assert_eq!(host_of("HTTP://EVIL.org./a"), "evil.org");
        assert_eq!(host_of("git+ssh://git@github.com/x"), "github.com");
    }

    #[test]
    fn the_host_an_http_client_reaches() {
        for (url, host) in [
            // A backslash ends the authority: the "@good.com" is path, not user info.
            (r"http://x.evil.org\@good.com/", "x.evil.org"),
            (r"http:\\evil.org\x", "evil.org"),
            ("http:/evil.org/x", "evil.org"),
            ("https:evil.org", "evil.org"),
            ("http:///evil.org/x", "evil.org"),
            // User info runs to the last @.
            ("http://good.com@evil.org/", "evil.org"),
            ("http://a@good.com@evil.org/", "evil.org"),
            // Escapes, tabs and newlines.
            ("http://%65vil.org/", "evil.org"),
            ("http://ev\til.o\nrg/", "evil.org"),
            ("  http://evil.org  ", "evil.org"),
            // Numeric IPv4 forms: all the metadata endpoint or loopback.
            ("http://127.1/", "127.0.0.1"),
            ("http://2130706433/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
            ("http://169.254.43518/latest", "169.254.169.254"),
            ("http://0xA9FEA9FE/", "169.254.169.254"),
        ] {
            assert_eq!(host_of(url), host, "{url}");
        }
        // IPv4-mapped IPv6: the IPv4 address it reaches.
        assert_eq!(
            host_of("http://[::ffff:169.254.169.254]/"),
            "169.254.169.254"
        );
        assert_eq!(host_of("http://[::FFFF:a9fe:a9fe]/"), "169.254.169.254");
        assert_eq!(host_of("http://[2001:DB8::1]:443/"), "2001:db8::1");
        // Hosts a client would map further are not plain: the rules layer refuses them.
        for url in [
            "http://evil\u{3002}org/",
            "http://\u{ff45}vil.org/",
            "http://e%C2%ADvil.org/",
            "//evil.org/x",
        ] {
            assert!(!plain_host(&host_of(url)), "{url} -> {:?}", host_of(url));
        }
        for url in [
            "https://api.example.com/",
            "http://127.1/",
            "http://xn--mnchen-3ya.de/",
            "http://[::1]/",
        ] {
            assert!(plain_host(&host_of(url)), "{url}");
        }
        // Not IPv4: a name with a numeric label, or numbers out of range, stay as written.
        assert_eq!(host_of("http://1.2.3.4.5/"), "1.2.3.4.5");
        assert_eq!(host_of("http://256.1.1.1/"), "256.1.1.1");
        assert_eq!(host_of("http://v1.example.com/"), "v1.example.com");
    }
}
