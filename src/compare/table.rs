//! Plain-text tables: a header row and columns padded to their widest cell.

/// Renders rows under a header, two spaces between columns, no trailing spaces.
pub fn render(header: &[String], rows: &[Vec<String>]) -> String {
    let ncol = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(ncol) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate().take(ncol) {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            if i + 1 < ncol {
                s.extend(std::iter::repeat_n(' ', width[i] - c.chars().count()));
            }
        }
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(header);
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// Shortens a cell to `max` characters, ending in `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads() {
        let h = vec!["a".to_string(), "bb".to_string()];
        let r = vec![vec!["xyz".to_string(), "1".to_string()]];
        assert_eq!(render(&h, &r), "a    bb\nxyz  1\n");
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
