//! [`Lines`]: a command's output stream cut into lines for an
//! [`crate::Observer`], in linear time and bounded memory.
//!
//! A line longer than [`MAX_LINE`] bytes is not buffered whole: it is cut
//! into pieces of at most `MAX_LINE` bytes (never inside a UTF-8
//! character), each handed on as soon as it is full and marked as cut — the
//! line goes on in the next piece. Every byte is looked at once; at most
//! `MAX_LINE` bytes wait for their line to end. So a stream without a
//! single newline costs what the same bytes with newlines cost.

/// The most bytes of one line handed on at once (64 KiB); a longer line
/// arrives in pieces of this size, each but the last marked as cut.
pub const MAX_LINE: usize = 64 * 1024;

/// Splits a byte stream into lines (and pieces of long lines).
#[derive(Default)]
pub(crate) struct Lines {
    /// The start of a line whose end has not arrived yet: never a `\n`,
    /// at most [`MAX_LINE`] bytes.
    pending: Vec<u8>,
}

impl Lines {
    /// Takes `data`, handing each complete line (without its `\n`) to
    /// `emit(line, false)` and each full piece of a long line to
    /// `emit(piece, true)`.
    pub(crate) fn push(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        while !data.is_empty() {
            let room = MAX_LINE - self.pending.len();
            // One byte past the room: a line of exactly MAX_LINE bytes
            // whose newline follows is still one line.
            let look = &data[..data.len().min(room + 1)];
            if let Some(end) = look.iter().position(|&b| b == b'\n') {
                if self.pending.is_empty() {
                    emit(&look[..end], false);
                } else {
                    self.pending.extend_from_slice(&look[..end]);
                    emit(&self.pending, false);
                    self.pending.clear();
                }
                data = &data[end + 1..];
            } else if look.len() > room {
                // The line is longer than MAX_LINE: hand on a piece,
                // keeping back the start of a character cut in two.
                self.pending.extend_from_slice(&data[..room]);
                let cut = char_boundary(&self.pending);
                emit(&self.pending[..cut], true);
                self.pending.drain(..cut);
                data = &data[room..];
            } else {
                self.pending.extend_from_slice(look);
                data = &[];
            }
        }
    }

    /// The stream ended: hands on a last line without a newline.
    pub(crate) fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if !self.pending.is_empty() {
            emit(&self.pending, false);
            self.pending.clear();
        }
    }
}

/// Where to cut `bytes` so that no UTF-8 character is cut in two: its end,
/// or the start of an incomplete character in its last three bytes (bytes
/// that are not UTF-8 are cut anywhere).
fn char_boundary(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=3.min(len) {
        let at = len - back;
        let byte = bytes[at];
        if byte & 0b1100_0000 != 0b1000_0000 {
            // A lead byte (or ASCII) `back` bytes from the end: cut before
            // it when its character needs more than it has.
            let needs = match byte {
                0xf0..=0xf4 => 4,
                0xe0..=0xef => 3,
                0xc2..=0xdf => 2,
                _ => 1,
            };
            return if needs > back && at > 0 { at } else { len };
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut lines = Lines::default();
        let mut got = Vec::new();
        for chunk in chunks {
            lines.push(chunk, |l, cut| got.push((l.to_vec(), cut)));
        }
        lines.finish(|l, cut| got.push((l.to_vec(), cut)));
        got
    }

    #[test]
    fn lines_split_across_chunks() {
        let got = split(&[b"ab", b"c\nde\n\nf"]);
        let want: Vec<(Vec<u8>, bool)> = vec![
            (b"abc".to_vec(), false),
            (b"de".to_vec(), false),
            (b"".to_vec(), false),
            (b"f".to_vec(), false),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_long_line_comes_in_marked_pieces_of_at_most_the_cap() {
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let mut stream = long.clone();
        stream.extend_from_slice(b"\nnext\n");
        // In chunks of every size, the same pieces.
        for chunk in [1, 7, 4096, MAX_LINE, MAX_LINE + 1, stream.len()] {
            let chunks: Vec<&[u8]> = stream.chunks(chunk).collect();
            let got = split(&chunks);
            let shape: Vec<(usize, bool)> = got.iter().map(|(l, c)| (l.len(), *c)).collect();
            assert_eq!(
                shape,
                [(MAX_LINE, true), (MAX_LINE, true), (10, false), (4, false)],
                "chunks of {chunk}"
            );
            let joined: Vec<u8> = got[..3].iter().flat_map(|(l, _)| l.clone()).collect();
            assert_eq!(joined, long);
        }
    }

    #[test]
    fn a_line_of_exactly_the_cap_is_one_line() {
        let mut stream = vec![b'y'; MAX_LINE];
        stream.push(b'\n');
        for chunk in [1, 1000, MAX_LINE, stream.len()] {
            let chunks: Vec<&[u8]> = stream.chunks(chunk).collect();
            let shape: Vec<(usize, bool)> =
                split(&chunks).iter().map(|(l, c)| (l.len(), *c)).collect();
            assert_eq!(shape, [(MAX_LINE, false)], "chunks of {chunk}");
        }
    }

    #[test]
    fn pieces_never_cut_a_character() {
        // "é" is two bytes: with one ASCII byte first, a cut at MAX_LINE
        // would fall inside one.
        let mut stream = b"a".to_vec();
        for _ in 0..MAX_LINE {
            stream.extend_from_slice("é".as_bytes());
        }
        let got = split(&[&stream]);
        for (piece, _) in &got {
            assert!(std::str::from_utf8(piece).is_ok(), "{} bytes", piece.len());
            assert!(piece.len() <= MAX_LINE);
        }
        let joined: Vec<u8> = got.iter().flat_map(|(l, _)| l.clone()).collect();
        assert_eq!(joined, stream);
        assert!(got.iter().filter(|(_, cut)| *cut).count() >= 2);
    }

    #[test]
    fn boundaries() {
        assert_eq!(char_boundary(b"abc"), 3);
        assert_eq!(char_boundary("aé".as_bytes()), 3);
        assert_eq!(char_boundary(&"aé".as_bytes()[..2]), 1);
        assert_eq!(char_boundary(&"a€".as_bytes()[..3]), 1);
        assert_eq!(char_boundary(&[0xff, 0xff]), 2);
        assert_eq!(char_boundary(&[0xe2]), 1);
    }
}
