//! The fast path of reading `procs.yaml`: a small, strict YAML reader for the forms
//! configuration files are written in, straight to a location-free `serde_json::Value`.
//!
//! Owns: reading one file the way the located parser ([`tree`], serde-saphyr) reads it —
//! YAML 1.2 scalars with procs' options (`no`/`on` are strings, `0755` and `1_000` stay
//! strings, floats keep their spelling), Compose interpolation of values, anchors, aliases
//! and merge keys — and merging the override on top ([`merge`]).
//! Covers: block mappings and sequences (including compact `- key: value` items), flow
//! collections (`[a, b]`, `{k: v}`, also across lines), plain, single- and double-quoted
//! single-line scalars, multi-line plain scalars, literal and folded block scalars (`|`, `>-`, `|+`, …), comments,
//! one optional `---`, anchors `&a`, aliases `*a`, merge keys `<<: *a` / `<<: [*a, *b]`, and
//! the common interpolation forms (`$$`, `$VAR`, `${VAR}`, `${VAR:-text}`, `${VAR-text}`,
//! `${VAR:+text}`, `${VAR+text}`, and `${VAR:?msg}` / `${VAR?msg}` when satisfied).
//! Interpolation forms it does not expand itself (nested `${A:-${B}}`, unusual names) are
//! expanded by serde-saphyr for that one scalar.
//! Must not: report anything. Whatever it does not cover — tags, multi-line quoted scalars,
//! multi-line plain scalars inside flow collections, complex keys, tabs, CR line ends,
//! directives, several documents, a duplicate key, a failed interpolation, anything invalid —
//! makes it give up with `None`, and the caller takes the slow, located path, which is the
//! reference.
//! Invariants: when [`document`] returns `Some(doc)`, the located tree reads the same files
//! without a problem into a tree whose `to_json()` equals `doc` (the test
//! `fast_document_equals_the_located_tree_on_random_and_mutated_yaml` and the tests below
//! check this against the real parser). It never panics and gives up on inputs bigger than
//! the located parser's budgets allow, so it can only ever be *faster*.

use std::collections::HashMap;

use serde_json::{Map, Value as J};

/// Inputs larger than this are left to the located parser (and its budgets).
const MAX_INPUT: usize = 8 * 1024 * 1024;
/// Nesting depth limit (serde-saphyr's is 64).
const MAX_DEPTH: usize = 48;
/// Nodes created, alias copies included (serde-saphyr allows 250 000).
const MAX_NODES: usize = 200_000;
/// Implicit keys longer than this need the located parser (its look-ahead is 1024).
const MAX_KEY: usize = 1000;

/// Every file parsed and merged in order (later files on top), or `None` when any of them
/// needs the located parser. `props`: the interpolation sources, as for [`tree::parse`];
/// `None` reads every scalar literally.
///
/// [`tree::parse`]: super::tree::parse
pub fn document<'a>(
    texts: impl IntoIterator<Item = &'a str>,
    props: Option<&HashMap<String, String>>,
) -> Option<J> {
    let mut doc: Option<J> = None;
    for text in texts {
        let parsed = parse(text, props)?;
        doc = Some(match doc {
            None => parsed,
            Some(base) => merge(base, parsed),
        });
    }
    Some(doc.unwrap_or(J::Null))
}

/// One file; `None` if it needs the located parser (see the module docs).
pub fn parse(text: &str, props: Option<&HashMap<String, String>>) -> Option<J> {
    if text.len() > MAX_INPUT || !plain_text(text) {
        return None;
    }
    let mut r = Reader {
        b: text.as_bytes(),
        text,
        pos: 0,
        line_start: 0,
        props,
        anchors: HashMap::new(),
        nodes: 0,
        depth: 0,
        saphyr: None,
    };
    r.skip_blank_lines();
    if r.starts_marker(*b"...") {
        return None;
    }
    if r.starts_marker(*b"---") {
        r.pos += 3;
        if !r.at_line_end() {
            return None;
        }
        r.eol()?;
    }
    let value = if r.eof() { J::Null } else { r.block_node(-1)? };
    r.eof().then_some(value)
}

/// Merges `over` on top of `base` exactly like [`tree::Node::merge`]: mappings merge by
/// key, recursively; anything else is replaced by the override.
///
/// [`tree::Node::merge`]: super::tree::Node::merge
pub fn merge(base: J, over: J) -> J {
    match (base, over) {
        (J::Object(mut base), J::Object(top)) => {
            for (key, value) in top {
                let merged = match base.remove(&key) {
                    Some(old) => merge(old, value),
                    None => value,
                };
                base.insert(key, merged);
            }
            J::Object(base)
        }
        (_, over) => over,
    }
}

/// No tab, CR, BOM, control or other non-printable character anywhere: those have rules
/// (tabs as separators, line-break kinds) this reader leaves to the located parser.
fn plain_text(text: &str) -> bool {
    let printable = |b: u8| b == b'\n' || (0x20..0x7f).contains(&b);
    if text.is_ascii() {
        return text.bytes().all(printable);
    }
    text.chars().all(|c| match c {
        '\u{80}'..='\u{9f}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}' | '\u{2028}' | '\u{2029}' => {
            false
        }
        c if c.is_ascii() => printable(c as u8),
        _ => true,
    })
}

/// A scalar as read: its text (escapes decoded) and whether it was plain (unquoted).
struct Scalar<'a> {
    text: std::borrow::Cow<'a, str>,
    plain: bool,
}

struct Reader<'a> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    line_start: usize,
    props: Option<&'a HashMap<String, String>>,
    anchors: HashMap<&'a str, J>,
    nodes: usize,
    depth: usize,
    /// serde-saphyr's options with `props`, made on first use (see [`Reader::expand`]).
    saphyr: Option<serde_saphyr::Options>,
}

impl<'a> Reader<'a> {
    // ------------------------------------------------------------------ positions

    fn peek(&self) -> u8 {
        self.at(self.pos)
    }

    /// The byte at `i`; 0 past the end (the text holds no NUL: see [`plain_text`]).
    fn at(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    fn eof(&self) -> bool {
        self.pos >= self.b.len()
    }

    fn col(&self) -> usize {
        self.pos - self.line_start
    }

    /// Whether the byte at `i` ends a token: space, line end or end of input.
    fn blank(&self, i: usize) -> bool {
        matches!(self.at(i), b' ' | b'\n' | 0)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == b' ' {
            self.pos += 1;
        }
    }

    /// At a line end, the end of input, or a comment (a `#` after a space).
    fn at_line_end(&self) -> bool {
        match self.peek() {
            b'\n' | 0 => true,
            b'#' => self.pos > 0 && self.at(self.pos - 1) == b' ',
            _ => {
                let mut i = self.pos;
                while self.at(i) == b' ' {
                    i += 1;
                }
                i > self.pos && matches!(self.at(i), b'\n' | 0 | b'#')
            }
        }
    }

    /// `marker` (`---` or `...`) at the start of the current line, as a document marker.
    fn starts_marker(&self, marker: [u8; 3]) -> bool {
        self.pos == self.line_start
            && self.b[self.pos..].starts_with(&marker)
            && self.blank(self.pos + 3)
    }

    /// From the start of a line, to the first character of the next line with content
    /// (or the end of input), skipping blank and comment-only lines.
    fn next_content(&mut self) -> Option<()> {
        self.skip_blank_lines();
        (!(self.starts_marker(*b"---") || self.starts_marker(*b"..."))).then_some(())
    }

    /// [`Self::next_content`] without the check for document markers.
    fn skip_blank_lines(&mut self) {
        loop {
            self.line_start = self.pos;
            self.skip_spaces();
            match self.peek() {
                b'\n' => self.pos += 1,
                b'#' => self.skip_line(),
                _ => return,
            }
        }
    }

    /// Past the next line end (or to the end of input).
    fn skip_line(&mut self) {
        match memchr(b'\n', &self.b[self.pos..]) {
            Some(i) => self.pos += i + 1,
            None => self.pos = self.b.len(),
        }
    }

    /// The rest of the line must be empty or a comment; then on to the next content.
    fn eol(&mut self) -> Option<()> {
        if !self.at_line_end() {
            return None;
        }
        self.skip_line();
        self.next_content()
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn count(&mut self, n: usize) -> Option<()> {
        self.nodes += n;
        (self.nodes <= MAX_NODES).then_some(())
    }

    // ------------------------------------------------------------------ block context

    /// A node starting at the current position (the first content of its line, or after
    /// `- `), in a block collection indented at `parent`.
    fn block_node(&mut self, parent: isize) -> Option<J> {
        self.enter()?;
        let col = self.col();
        let value = match self.peek() {
            b'-' if self.blank(self.pos + 1) => self.block_seq(col)?,
            b'|' | b'>' => self.block_scalar(parent)?,
            b'[' | b'{' | b'*' => {
                let v = self.inline_node(parent)?;
                self.eol()?;
                v
            }
            _ => {
                let start = self.pos;
                let first = self.scalar(false)?;
                self.skip_spaces();
                if self.peek() == b':' && self.blank(self.pos + 1) {
                    self.pos = start;
                    self.block_map(col)?
                } else {
                    let whole = self.plain_tail(first, parent)?;
                    let v = self.value_of(whole)?;
                    self.eol()?;
                    v
                }
            }
        };
        self.depth -= 1;
        Some(value)
    }

    /// A block mapping whose keys sit at column `col`.
    fn block_map(&mut self, col: usize) -> Option<J> {
        let mut out = Map::new();
        let mut merged: Option<J> = None;
        loop {
            let start = self.pos;
            let key = self.scalar(false)?;
            if self.pos - start > MAX_KEY {
                return None;
            }
            self.skip_spaces();
            if !(self.peek() == b':' && self.blank(self.pos + 1)) {
                return None;
            }
            self.pos += 1;
            let is_merge = key.plain && key.text == "<<";
            let key = key_string(&key)?;
            let value = self.after_indicator(col, false)?;
            self.count(1)?;
            if is_merge {
                if merged.is_some() {
                    return None;
                }
                merged = Some(value);
            } else if out.insert(key, value).is_some() {
                return None;
            }
            if self.eof() || self.col() < col {
                break;
            }
            if self.col() > col || (self.peek() == b'-' && self.blank(self.pos + 1)) {
                return None;
            }
        }
        if let Some(sources) = merged {
            apply_merge(&mut out, sources)?;
        }
        Some(J::Object(out))
    }

    /// A block sequence whose dashes sit at column `col`.
    fn block_seq(&mut self, col: usize) -> Option<J> {
        let mut items = Vec::new();
        loop {
            self.pos += 1;
            items.push(self.after_indicator(col, true)?);
            self.count(1)?;
            if self.eof() || self.col() < col {
                break;
            }
            if self.col() > col || !(self.peek() == b'-' && self.blank(self.pos + 1)) {
                if self.col() == col {
                    break;
                }
                return None;
            }
        }
        Some(J::Array(items))
    }

    /// The value after a mapping key's `:` or a sequence item's `-` in a collection at
    /// `col`: on the same line, or on the lines below; with an optional anchor.
    fn after_indicator(&mut self, col: usize, in_seq: bool) -> Option<J> {
        self.skip_spaces();
        let anchor = if self.peek() == b'&' {
            let name = self.name()?;
            self.skip_spaces();
            // Inside its own node the name is being defined: an alias to it there is a
            // recursive reference (the located parser's error), not the previous definition.
            self.anchors.remove(name);
            Some(name)
        } else {
            None
        };
        let value = if self.at_line_end() {
            self.eol()?;
            if self.eof() {
                J::Null
            } else if self.col() > col {
                self.block_node(col as isize)?
            } else if !in_seq
                && self.col() == col
                && self.peek() == b'-'
                && self.blank(self.pos + 1)
            {
                self.enter()?;
                let v = self.block_seq(col)?;
                self.depth -= 1;
                v
            } else {
                J::Null
            }
        } else if in_seq && anchor.is_none() {
            self.block_node(col as isize)?
        } else {
            match self.peek() {
                b'|' | b'>' => self.block_scalar(col as isize)?,
                b'*' if anchor.is_some() => return None,
                _ => {
                    let v = self.inline_node(col as isize)?;
                    self.eol()?;
                    v
                }
            }
        };
        if let Some(name) = anchor {
            if self.anchors.len() >= 10_000 {
                return None;
            }
            // A definition of the same name inside the node came later in the document,
            // so it is the one later aliases mean.
            if !self.anchors.contains_key(name) {
                self.anchors.insert(name, value.clone());
            }
        }
        Some(value)
    }

    /// A node on the current line: flow collection, alias or scalar.
    fn inline_node(&mut self, parent: isize) -> Option<J> {
        match self.peek() {
            b'[' | b'{' => self.flow(parent),
            b'*' => self.alias(),
            _ => {
                let s = self.scalar(false)?;
                let whole = self.plain_tail(s, parent)?;
                self.value_of(whole)
            }
        }
    }

    /// A plain scalar (`first`, just read) continued on the following lines, each indented
    /// deeper than `parent`: the lines fold into one — a line break becomes a space, blank
    /// lines stay line breaks. Continuation lines that look like structure (`key: value`,
    /// an indicator first) are left to the located parser.
    fn plain_tail(&mut self, first: Scalar<'a>, parent: isize) -> Option<Scalar<'a>> {
        if !first.plain || parent < 0 {
            return Some(first);
        }
        let mut i = self.pos;
        while self.at(i) == b' ' {
            i += 1;
        }
        let mut folded: Option<String> = None;
        let mut end = self.pos;
        while self.at(i) == b'\n' {
            let mut blanks = 0;
            let mut line_start = i + 1;
            let mut j = line_start;
            loop {
                while self.at(j) == b' ' {
                    j += 1;
                }
                if self.at(j) != b'\n' {
                    break;
                }
                blanks += 1;
                j += 1;
                line_start = j;
            }
            if matches!(self.at(j), 0 | b'#') || (j - line_start) as isize <= parent {
                break;
            }
            let line_end = memchr(b'\n', &self.b[j..]).map_or(self.b.len(), |k| j + k);
            let mut line = self.text[j..line_end].trim_end_matches(' ');
            // A comment ends the scalar (a deeper line after it is the caller's problem).
            let commented = line.find(" #");
            if let Some(k) = commented {
                line = line[..k].trim_end_matches(' ');
            }
            if line.contains(": ")
                || line.ends_with(':')
                || line == "-"
                || line.starts_with("- ")
                || matches!(
                    line.as_bytes()[0],
                    b'?' | b':'
                        | b','
                        | b'['
                        | b']'
                        | b'{'
                        | b'}'
                        | b'&'
                        | b'*'
                        | b'!'
                        | b'|'
                        | b'>'
                        | b'\''
                        | b'"'
                        | b'%'
                        | b'@'
                        | b'`'
                )
            {
                return None;
            }
            let text = folded.get_or_insert_with(|| first.text.to_string());
            if blanks == 0 {
                text.push(' ');
            }
            text.extend(std::iter::repeat_n('\n', blanks));
            text.push_str(line);
            self.line_start = line_start;
            end = j + line.len();
            i = line_end;
            if commented.is_some() {
                break;
            }
        }
        self.pos = end;
        Some(match folded {
            Some(text) => Scalar {
                text: text.into(),
                plain: true,
            },
            None => first,
        })
    }

    /// `&name` or `*name`: the name after the indicator.
    fn name(&mut self) -> Option<&'a str> {
        self.pos += 1;
        let start = self.pos;
        while !matches!(
            self.peek(),
            b' ' | b'\n' | 0 | b',' | b'[' | b']' | b'{' | b'}'
        ) {
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.text[start..self.pos])
    }

    fn alias(&mut self) -> Option<J> {
        let name = self.name()?;
        let value = self.anchors.get(name)?.clone();
        self.count(size(&value))?;
        Some(value)
    }

    /// A literal (`|`) or folded (`>`) block scalar in a collection at `parent`.
    fn block_scalar(&mut self, parent: isize) -> Option<J> {
        let folded = self.peek() == b'>';
        self.pos += 1;
        let mut chomp = b' ';
        if matches!(self.peek(), b'-' | b'+') {
            chomp = self.peek();
            self.pos += 1;
        }
        if !self.at_line_end() || parent < 0 {
            return None;
        }
        self.skip_line();
        // The lines: (indent, content after the indent); content `None` = blank line.
        let mut lines: Vec<(usize, Option<&'a str>)> = Vec::new();
        let mut indent: Option<usize> = None;
        loop {
            let line_start = self.pos;
            if self.eof() {
                break;
            }
            self.skip_spaces();
            let spaces = self.pos - line_start;
            let end = memchr(b'\n', &self.b[self.pos..]).map_or(self.b.len(), |i| self.pos + i);
            if self.pos == end {
                lines.push((spaces, None));
            } else {
                if indent.is_none() && spaces as isize <= parent {
                    // The first text line is not indented deeper: the scalar is empty.
                    self.pos = line_start;
                    break;
                }
                let n = *indent.get_or_insert(spaces);
                if spaces < n {
                    self.pos = line_start;
                    break;
                }
                lines.push((spaces, Some(&self.text[line_start + n..end])));
            }
            self.pos = (end + 1).min(self.b.len());
        }
        let Some(n) = indent else {
            // No content at all: the empty string (kept line breaks are left to the
            // located parser).
            if chomp == b'+' {
                return None;
            }
            self.line_start = self.pos;
            self.next_content()?;
            self.count(1)?;
            return Some(J::String(String::new()));
        };
        if lines
            .iter()
            .any(|(spaces, content)| content.is_none() && *spaces > n)
        {
            return None;
        }
        let last = lines.iter().rposition(|(_, c)| c.is_some())?;
        let trailing = lines.len() - 1 - last;
        let mut out = String::new();
        // Folding state: whether a text line was seen and whether it was more indented.
        let mut previous: Option<bool> = None;
        let mut blank_run = 0;
        for (_, content) in &lines[..=last] {
            match content {
                None if folded && previous.is_some() => blank_run += 1,
                None => out.push('\n'),
                Some(text) if folded => {
                    let indented = text.starts_with(' ');
                    if let Some(was_indented) = previous {
                        // A break between two plain text lines folds into a space (or
                        // into the blank lines that follow it); around more-indented
                        // lines every break is kept.
                        if was_indented || indented {
                            blank_run += 1;
                        } else if blank_run == 0 {
                            out.push(' ');
                        }
                        out.extend(std::iter::repeat_n('\n', blank_run));
                    }
                    blank_run = 0;
                    out.push_str(text);
                    previous = Some(indented);
                }
                Some(text) => {
                    out.push_str(text);
                    out.push('\n');
                }
            }
        }
        if folded {
            out.push('\n');
        }
        match chomp {
            b'-' => {
                out.pop();
            }
            b'+' => out.extend(std::iter::repeat_n('\n', trailing)),
            _ => {}
        }
        self.line_start = self.pos;
        self.next_content()?;
        self.count(1)?;
        if let Some(vars) = self.props
            && out.contains('$')
        {
            return self.expand(&out, vars).map(J::String);
        }
        Some(J::String(out))
    }

    // ------------------------------------------------------------------ flow context

    /// A flow collection, possibly across lines (each indented deeper than `parent`).
    fn flow(&mut self, parent: isize) -> Option<J> {
        self.enter()?;
        let is_map = self.peek() == b'{';
        let close = if is_map { b'}' } else { b']' };
        self.pos += 1;
        let mut items = Vec::new();
        let mut map = Map::new();
        let mut first = true;
        loop {
            self.flow_space(parent)?;
            if self.peek() == close && first {
                self.pos += 1;
                break;
            }
            if is_map {
                let key = self.scalar(true)?;
                if key.plain && key.text == "<<" {
                    return None;
                }
                let key = key_string(&key)?;
                self.skip_spaces();
                if !(self.peek() == b':' && self.blank(self.pos + 1)) {
                    return None;
                }
                self.pos += 1;
                self.flow_space(parent)?;
                let value = if matches!(self.peek(), b',' | b'}') {
                    J::Null
                } else {
                    self.flow_node(parent)?
                };
                if map.insert(key, value).is_some() {
                    return None;
                }
            } else {
                items.push(self.flow_node(parent)?);
            }
            self.count(1)?;
            self.flow_space(parent)?;
            match self.peek() {
                b',' => {
                    self.pos += 1;
                    first = false;
                    self.flow_space(parent)?;
                    if self.peek() == close {
                        return None;
                    }
                }
                c if c == close => {
                    self.pos += 1;
                    break;
                }
                _ => return None,
            }
        }
        self.depth -= 1;
        Some(if is_map {
            J::Object(map)
        } else {
            J::Array(items)
        })
    }

    /// Spaces, comments and line breaks inside a flow collection; a continuation line must
    /// be indented deeper than `parent`.
    fn flow_space(&mut self, parent: isize) -> Option<()> {
        loop {
            match self.peek() {
                b' ' => self.pos += 1,
                b'#' if self.pos > 0 && matches!(self.at(self.pos - 1), b' ' | b'\n') => {
                    while !matches!(self.peek(), b'\n' | 0) {
                        self.pos += 1;
                    }
                }
                b'\n' => {
                    self.pos += 1;
                    self.line_start = self.pos;
                    self.skip_spaces();
                    if !matches!(self.peek(), b'\n' | b'#' | 0) && self.col() as isize <= parent {
                        return None;
                    }
                    if self.col() == 0
                        && (self.b[self.pos..].starts_with(b"---")
                            || self.b[self.pos..].starts_with(b"..."))
                    {
                        return None;
                    }
                }
                _ => return Some(()),
            }
        }
    }

    fn flow_node(&mut self, parent: isize) -> Option<J> {
        let value = match self.peek() {
            b'[' | b'{' => self.flow(parent)?,
            b'*' => self.alias()?,
            _ => {
                let s = self.scalar(true)?;
                self.value_of(s)?
            }
        };
        self.skip_spaces();
        // `[a: b]` (a one-pair mapping in a sequence) is left to the located parser.
        (self.peek() != b':').then_some(value)
    }

    // ------------------------------------------------------------------ scalars

    /// A single-line scalar: quoted, or plain (which ends at `: `, ` #`, the line end and,
    /// in flow context, at flow indicators).
    fn scalar(&mut self, flow: bool) -> Option<Scalar<'a>> {
        match self.peek() {
            b'\'' => self.single_quoted(),
            b'"' => self.double_quoted(),
            b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>' | b'%'
            | b'@' | b'`' | b'?' | b':' | b'\n' | b' ' | 0 => None,
            b'-' if self.blank(self.pos + 1)
                || (flow && matches!(self.at(self.pos + 1), b',' | b'[' | b']' | b'{' | b'}')) =>
            {
                None
            }
            _ => {
                let start = self.pos;
                loop {
                    match self.peek() {
                        b'\n' | 0 => break,
                        b':' if self.blank(self.pos + 1)
                            || (flow
                                && matches!(
                                    self.at(self.pos + 1),
                                    b',' | b'[' | b']' | b'{' | b'}'
                                )) =>
                        {
                            break;
                        }
                        b'#' if self.at(self.pos - 1) == b' ' => break,
                        b',' | b'[' | b']' | b'{' | b'}' if flow => break,
                        _ => self.pos += 1,
                    }
                }
                let text = self.text[start..self.pos].trim_end_matches(' ');
                self.pos = start + text.len();
                Some(Scalar {
                    text: text.into(),
                    plain: true,
                })
            }
        }
    }

    fn single_quoted(&mut self) -> Option<Scalar<'a>> {
        self.pos += 1;
        let start = self.pos;
        let mut out: Option<String> = None;
        let mut run = start;
        loop {
            match self.peek() {
                b'\n' | 0 => return None,
                b'\'' if self.at(self.pos + 1) == b'\'' => {
                    out.get_or_insert_with(String::new)
                        .push_str(&self.text[run..=self.pos]);
                    self.pos += 2;
                    run = self.pos;
                }
                b'\'' => {
                    return Some(self.close_quote(start, run, out));
                }
                _ => self.pos += 1,
            }
        }
    }

    /// At a closing quote: the scalar's text — borrowed when nothing was unescaped, else
    /// `decoded` plus the run since the last escape — and past the quote.
    fn close_quote(&mut self, start: usize, run: usize, decoded: Option<String>) -> Scalar<'a> {
        let text = match decoded {
            None => self.text[start..self.pos].into(),
            Some(mut s) => {
                s.push_str(&self.text[run..self.pos]);
                s.into()
            }
        };
        self.pos += 1;
        Scalar { text, plain: false }
    }

    fn double_quoted(&mut self) -> Option<Scalar<'a>> {
        self.pos += 1;
        let start = self.pos;
        let mut out: Option<String> = None;
        let mut run = start;
        loop {
            match self.peek() {
                b'\n' | 0 => return None,
                b'"' => {
                    return Some(self.close_quote(start, run, out));
                }
                b'\\' => {
                    let s = out.get_or_insert_with(String::new);
                    s.push_str(&self.text[run..self.pos]);
                    let e = self.at(self.pos + 1);
                    self.pos += 2;
                    let c = match e {
                        b'0' => '\0',
                        b'a' => '\u{7}',
                        b'b' => '\u{8}',
                        b't' => '\t',
                        b'n' => '\n',
                        b'v' => '\u{b}',
                        b'f' => '\u{c}',
                        b'r' => '\r',
                        b'e' => '\u{1b}',
                        b' ' => ' ',
                        b'"' => '"',
                        b'/' => '/',
                        b'\\' => '\\',
                        b'N' => '\u{85}',
                        b'_' => '\u{a0}',
                        b'L' => '\u{2028}',
                        b'P' => '\u{2029}',
                        b'x' => self.hex(2)?,
                        b'u' => self.hex(4)?,
                        b'U' => self.hex(8)?,
                        _ => return None,
                    };
                    s.push(c);
                    run = self.pos;
                }
                _ => self.pos += 1,
            }
        }
    }

    fn hex(&mut self, digits: usize) -> Option<char> {
        let text = self.text.get(self.pos..self.pos + digits)?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += digits;
        char::from_u32(u32::from_str_radix(text, 16).ok()?)
    }

    /// `text` interpolated: the common forms here; the rest (nested references, unusual
    /// names) by serde-saphyr itself, on a one-scalar document — so a single `${A:-${B}}`
    /// does not send a whole large file down the located path. `None` when interpolation
    /// fails (an unset required variable): the located parser reports it.
    fn expand(&mut self, text: &str, vars: &HashMap<String, String>) -> Option<String> {
        if let Some(done) = interpolate(text, vars) {
            return Some(done);
        }
        let options = self
            .saphyr
            .get_or_insert_with(|| super::tree::parse_options(Some(vars)))
            .clone();
        // A JSON string is a valid YAML double-quoted scalar with the same value.
        let quoted = serde_json::to_string(text).ok()?;
        serde_saphyr::from_str_with_options::<String>(&quoted, options).ok()
    }

    /// A scalar in value position: interpolated (an interpolated value stays a string, as
    /// in Compose), otherwise typed when plain.
    fn value_of(&mut self, s: Scalar<'a>) -> Option<J> {
        self.count(1)?;
        if let Some(vars) = self.props
            && s.text.contains('$')
        {
            let expanded = self.expand(&s.text, vars)?;
            if expanded != s.text {
                return Some(J::String(expanded));
            }
        }
        if s.plain {
            resolve_plain(&s.text)
        } else {
            Some(J::String(s.text.into_owned()))
        }
    }
}

/// The JSON for a plain scalar, as serde-saphyr types it for procs (and the located tree
/// converts it): YAML 1.2 null and booleans, decimal integers, floats kept as written.
fn resolve_plain(s: &str) -> Option<J> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Some(J::Null),
        "true" | "True" | "TRUE" => return Some(J::Bool(true)),
        "false" | "False" | "FALSE" => return Some(J::Bool(false)),
        _ => {}
    }
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits_only = !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit());
    if (digits_only && unsigned.len() > 1 && unsigned.starts_with('0')) || s.contains('_') {
        // `0755`, `1_000`: kept as strings (procs' parse options).
        return Some(J::String(s.to_owned()));
    }
    if let Some(value) = radix_int(s, unsigned) {
        return Some(value);
    }
    if digits_only {
        if s.starts_with('-') {
            if let Ok(v) = s.parse::<i64>() {
                return Some(J::from(v));
            }
        } else if let Ok(v) = unsigned.parse::<u64>() {
            return Some(J::from(v));
        }
    }
    // A float keeps its source spelling (the located tree's rule) — except the spellings
    // of infinity and NaN and literals too big for `f64`, which the located parser rejects
    // or respells.
    let non_finite = matches!(
        unsigned,
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF"
    ) || (unsigned.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && s.parse::<f64>().is_ok_and(f64::is_infinite));
    if non_finite {
        return None;
    }
    Some(J::String(s.to_owned()))
}

/// `0x1F`, `0o17`, `0b101` (optionally signed): the number when it fits 64 bits, the text
/// otherwise; `None` when `s` has no such prefix.
fn radix_int(s: &str, unsigned: &str) -> Option<J> {
    let radix = match unsigned.get(..2)? {
        "0x" | "0X" => 16,
        "0o" | "0O" => 8,
        "0b" | "0B" => 2,
        _ => return None,
    };
    let digits = &unsigned[2..];
    let magnitude = (!digits.is_empty() && digits.chars().all(|c| c.is_digit(radix)))
        .then(|| u128::from_str_radix(digits, radix).ok())
        .flatten();
    let number = magnitude.and_then(|m| {
        if s.starts_with('-') {
            i64::try_from(-i128::try_from(m).ok()?).ok().map(J::from)
        } else {
            u64::try_from(m).ok().map(J::from)
        }
    });
    Some(number.unwrap_or_else(|| J::String(s.to_owned())))
}

/// A mapping key as the located tree stringifies it; `None` for keys it cannot vouch for.
fn key_string(key: &Scalar<'_>) -> Option<String> {
    if !key.plain {
        // A quoted `"<<"` is an ordinary key (only the plain spelling merges).
        return Some(key.text.clone().into_owned());
    }
    Some(match resolve_plain(&key.text)? {
        J::Null => "null".to_owned(),
        J::Bool(b) => b.to_string(),
        J::Number(n) => n.to_string(),
        J::String(s) => s,
        J::Array(_) | J::Object(_) => return None,
    })
}

/// Applies a `<<` value to `out`: the explicit keys stay; then each merged mapping's keys,
/// in order, where not already present (serde-saphyr's order).
fn apply_merge(out: &mut Map<String, J>, sources: J) -> Option<()> {
    let sources = match sources {
        J::Object(m) => vec![m],
        J::Array(items) => items
            .into_iter()
            .map(|i| match i {
                J::Object(m) => Some(m),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?,
        _ => return None,
    };
    for source in sources {
        for (key, value) in source {
            if !out.contains_key(&key) {
                out.insert(key, value);
            }
        }
    }
    Some(())
}

/// How many nodes a value holds (for the alias budget).
fn size(value: &J) -> usize {
    match value {
        J::Array(items) => 1 + items.iter().map(size).sum::<usize>(),
        J::Object(map) => 1 + map.values().map(size).sum::<usize>(),
        _ => 1,
    }
}

/// Compose interpolation of the common forms; `None` for anything else (nested
/// references, unset required variables, unusual names), which the located parser handles.
fn interpolate(text: &str, vars: &HashMap<String, String>) -> Option<String> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut run = 0;
    let var_start = |c: u8| c == b'_' || c.is_ascii_alphabetic();
    let var_len = |from: usize| {
        b[from..]
            .iter()
            .take_while(|c| **c == b'_' || c.is_ascii_alphanumeric())
            .count()
    };
    while let Some(off) = memchr(b'$', &b[i..]) {
        let d = i + off;
        out.push_str(&text[run..d]);
        match b.get(d + 1) {
            Some(b'$') => {
                out.push('$');
                i = d + 2;
            }
            Some(b'{') => {
                let name_start = d + 2;
                if !b.get(name_start).copied().is_some_and(var_start) {
                    return None;
                }
                let name_end = name_start + var_len(name_start);
                if b.get(name_end).is_some_and(|c| !c.is_ascii()) {
                    // Compose also accepts two non-ASCII letters in names.
                    return None;
                }
                let name = &text[name_start..name_end];
                let value = vars.get(name).map(String::as_str);
                let rest = &text[name_end..];
                let close = rest.find('}')?;
                let op_and_text = &rest[..close];
                let (op, arg) = [":-", ":+", ":?", "-", "+", "?"]
                    .iter()
                    .find_map(|op| op_and_text.strip_prefix(op).map(|arg| (*op, arg)))
                    .unwrap_or(("", op_and_text));
                if op.is_empty() && !arg.is_empty() || arg.contains(['$', '{', '\n']) {
                    return None;
                }
                let replacement = match (op, value) {
                    ("", v) => v.unwrap_or(""),
                    ("-" | "?", Some(v)) => v,
                    (":-" | ":?", Some(v)) if !v.is_empty() => v,
                    ("-" | ":-", _) | ("+", Some(_)) => arg,
                    (":+", Some(v)) if !v.is_empty() => arg,
                    ("+" | ":+", _) => "",
                    _ => return None,
                };
                out.push_str(replacement);
                i = name_end + close + 1;
            }
            Some(&c) if !c.is_ascii() => return None,
            Some(&c) if var_start(c) => {
                let name_end = d + 1 + var_len(d + 1);
                if b.get(name_end).is_some_and(|c| !c.is_ascii()) {
                    return None;
                }
                out.push_str(vars.get(&text[d + 1..name_end]).map_or("", String::as_str));
                i = name_end;
            }
            _ => {
                out.push('$');
                i = d + 1;
            }
        }
        run = i;
    }
    out.push_str(&text[run..]);
    Some(out)
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tree;

    /// The fast document must equal the located tree's JSON whenever it is produced.
    fn same_as_tree(text: &str, props: Option<&HashMap<String, String>>) -> Option<J> {
        let fast = parse(text, props)?;
        let (node, complex) =
            tree::parse(text, 0, props).unwrap_or_else(|e| panic!("tree failed: {e:?}\n{text}"));
        assert!(complex.is_empty(), "{text}");
        assert_eq!(fast, node.to_json(), "{text}");
        Some(fast)
    }

    fn read(text: &str) -> J {
        same_as_tree(text, None).unwrap_or_else(|| panic!("fast path gave up on:\n{text}"))
    }

    #[test]
    fn scalars_and_keys_match_the_tree() {
        read(
            "a: no\nb: 0755\nd: true\ny: 1\n1: one\ntrue: t\n~: n\n\
             s: 'x'\nl: [1, -2, '3', null]\nm: {k: v}\nu: 1_000\n",
        );
        read("v: 1.10\nw: 1e3\nx: -0.5\n1.5: k\nbig: 99999999999999999999\n");
        read("a: -m\nb: --port\nc: 127.0.0.1\nd: http://x:8/y?q#f\ne: a#b\nf: x # c\n");
        read("q: \"a\\tb\\u00e9\\x41\\\"\"\nr: 'it''s'\ns: ''\nt: \"\"\nu: \"#x\"\n");
        read("- a\n- - b\n  - c\n-\n  k: v\n- k: v\n  l: w\n- [x]\n");
        read("k:\n- a\n- b\nl: 1\n");
        read("--- # doc\na: 1\n");
        read("0x10: a\nb: 0o17\nc: -0b101\nd: 0xFFFFFFFFFFFFFFFFFF\ne: 0x\n");
        read("");
        read("# only a comment\n");
    }

    #[test]
    fn multi_line_plain_scalars_match_the_tree() {
        let doc = read(
            "a: x\n  continued\nb:\n  - one\n    two\n\n    three\n  - k: v\n      w # c\nc: 1\n",
        );
        assert_eq!(doc["a"], "x continued");
        assert_eq!(doc["b"][0], "one two\nthree");
        read("cmd: python3 -m http.server\n     --bind 127.0.0.1\n  # comment\nn: 2\n");
    }

    #[test]
    fn block_scalars_match_the_tree() {
        read("a: |\n  x\n   y\n\n  z\n\n\nb: 1\n");
        read("a: |-\n  x\n  y\nb: >\n  one\n  two\n\n  three\nc: >-\n  p\n  q\n");
        read("a: |+\n  x\n\n\nb: >+\n  y\n\n");
        read("s:\n  - |\n    echo a\n    echo b\n  - >\n    c\n");
        read("a: |\n\n  x\n");
    }

    #[test]
    fn anchors_and_merge_keys_match_the_tree() {
        let doc = read("x-c: &c {a: 1, b: [2]}\np:\n  <<: *c\n  b: 3\nq: *c\n");
        assert_eq!(doc["p"]["b"], 3);
        read("x-a: &a\n  k: 1\n  l: 2\nx-b: &b {l: 3, m: 4}\np:\n  z: 0\n  <<: [*a, *b]\n");
        read("d: &d\n  r: always\nps:\n  a:\n    <<: *d\n    c: x\n  b:\n    c: y\n    <<: *d\n");
        read("s: &s value\nt: *s\nl: [*s, *s]\n");
    }

    #[test]
    fn flow_collections_across_lines_match_the_tree() {
        read("a: [1,\n  2, # two\n  3]\nb: {\n  k: v,\n  l: [x, y]\n  }\n");
        read("a: {k: }\nb: []\nc: {}\n");
    }

    #[test]
    fn interpolation_matches_the_tree() {
        let props: HashMap<String, String> = [
            ("SET".to_owned(), "value".to_owned()),
            ("EMPTY".to_owned(), String::new()),
            ("PORT".to_owned(), "8080".to_owned()),
        ]
        .into();
        let text = "a: ${SET}\nb: ${MISSING}\nc: ${MISSING:-d}\nd: ${EMPTY:-d}\ne: ${EMPTY-d}\n\
                    f: ${SET:+alt}\ng: ${EMPTY+alt}\nh: $$HOME\ni: $SET/x\nj: ${SET?m}\n\
                    k: ${PORT}\nl: \"${PORT}\"\nm: [x, $PORT]\nn: a$\no: $1\np: |\n  ${SET}\n";
        let doc = same_as_tree(text, Some(&props)).expect("read");
        assert_eq!(doc["k"], "8080", "an interpolated value stays a string");
        assert_eq!(doc["b"], "");
        // Keys are never interpolated; a required-but-unset variable is left to the located
        // parser, which reports it.
        same_as_tree("${SET}: 1\n", Some(&props)).expect("read");
        assert_eq!(parse("a: ${MISSING:?needed}\n", Some(&props)), None);
        // Nested forms are expanded by serde-saphyr for just that scalar.
        let doc = same_as_tree(
            "a: ${MISSING:-${SET}}\nb: \"${MISSING:-x${SET}y}\"\nc: |\n  ${A:-${B:-z}}\n",
            Some(&props),
        )
        .expect("read");
        assert_eq!(doc["b"], "xvaluey");
    }

    #[test]
    fn gives_up_where_the_located_parser_decides() {
        for text in [
            "v: .inf\n",
            "? [a]\n: 1\n",
            "a: 1\na: 2\n",
            "a: [\n",
            "a: b: c\n",
            "a: !!str 1\n",
            "a: 'multi\n  line'\n",
            "a:\tb\n",
            "a: 1\r\n",
            "---\na: 1\n---\nb: 2\n",
            "%YAML 1.2\n---\na: 1\n",
            "a: [x,]\n",
            "a: *missing\n",
            "a: |2\n   x\n",
        ] {
            assert_eq!(parse(text, None), None, "{text:?}");
        }
    }

    #[test]
    fn merge_matches_the_tree() {
        let (base, over) = (
            "a: {b: 1, c: [1, 2]}\nd: x\n",
            "a: {c: [3]}\ne: y\nd: {z: 1}\n",
        );
        let fast = document([base, over], None).expect("parsed");
        let tree_base = tree::parse(base, 0, None).expect("base").0;
        let tree_over = tree::parse(over, 1, None).expect("over").0;
        assert_eq!(fast, tree_base.merge(tree_over).to_json());
    }
}
