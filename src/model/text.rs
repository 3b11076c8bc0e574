//! Text cut to a size for messages and stored entries.

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn char_prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_end_on_character_boundaries() {
        assert_eq!(char_prefix("short", 10), "short");
        assert_eq!(char_prefix("abcdef", 3), "abc");
        // "é" is two bytes: a cut in its middle steps back before it.
        assert_eq!(char_prefix("aé", 2), "a");
        assert_eq!(char_prefix("", 0), "");
    }
}
