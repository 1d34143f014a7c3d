//! Cutting text to a size: the one helper every crate uses, always on a
//! character boundary (a cut never splits a UTF-8 sequence).

/// The longest start of `s` of at most `max` bytes.
pub fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The start of `s` of at most `max` characters.
pub fn prefix_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `s` whole when it has at most `max` bytes, else its start with `marker` after it.
pub fn truncate(s: &str, max: usize, marker: &str) -> String {
    if s.len() <= max { s.to_string() } else { format!("{}{marker}", prefix(s, max)) }
}

/// `s` whole when it has at most `max` characters, else its start with `marker` after it.
pub fn truncate_chars(s: &str, max: usize, marker: &str) -> String {
    let p = prefix_chars(s, max);
    if p.len() == s.len() { s.to_string() } else { format!("{p}{marker}") }
}

/// `s` cut to about `max` bytes, keeping its start (two thirds) and its end
/// (one third), with how much was left out between them.
pub fn shorten_middle(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let head = prefix(s, max * 2 / 3).len();
    let mut tail = s.len() - max / 3;
    while tail < s.len() && !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}\n[… {} bytes left out …]\n{}", &s[..head], tail - head, &s[tail..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_fall_on_character_boundaries() {
        let s = "añb€c";
        assert_eq!(prefix(s, 2), "a", "ñ is two bytes: not split");
        assert_eq!(prefix(s, 3), "añ");
        assert_eq!(prefix(s, 100), s);
        assert_eq!(prefix_chars(s, 4), "añb€");
        assert_eq!(truncate(s, 4, "…"), "añb…");
        assert_eq!(truncate(s, 9, "…"), s, "fits: no marker");
        assert_eq!(truncate_chars(s, 2, "…"), "añ…");
        assert_eq!(truncate_chars(s, 5, "…"), s);
        let long = "é".repeat(100);
        let short = shorten_middle(&long, 30);
        assert!(short.starts_with("éééééééééé") && short.ends_with("ééééé"), "{short}");
        assert!(short.contains("bytes left out"));
    }
}
