//! A small POSIX-shell reader for judging commands, not running them:
//! quoting (`'…'`, `"…"`, `\`), operators (`|`, `&&`, `||`, `;`, `&`,
//! newlines, subshell parentheses), redirections, here-documents, and
//! command substitutions (`$(…)`, backticks), whose text is kept so it can
//! be judged too.

/// One word of a command after quote removal.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Word {
    pub text: String,
    /// Contains an unquoted or double-quoted expansion (`$VAR`, `$(…)`), so
    /// its value is only known at run time.
    pub dynamic: bool,
}

/// A redirection such as `> file` or `2>> log`; for here-documents the
/// target is the document's text.
#[derive(Debug, Clone, PartialEq)]
pub struct Redirect {
    pub op: String,
    pub target: String,
}

/// One simple command: `NAME=v cmd args > file`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimpleCommand {
    pub assignments: Vec<String>,
    pub argv: Vec<Word>,
    pub redirects: Vec<Redirect>,
}

/// Commands joined by `|`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pipeline {
    pub commands: Vec<SimpleCommand>,
}

/// A parsed command line: its pipelines and the scripts found inside
/// command substitutions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Script {
    pub pipelines: Vec<Pipeline>,
    pub substitutions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("unterminated {0}")]
    Unterminated(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(Word),
    /// `|`, `|&`, `&&`, `||`, `;`, `&`, `\n`, `(`, `)`.
    Op(&'static str),
    Redir(String),
}

struct Lexer<'a> {
    chars: Vec<char>,
    i: usize,
    toks: Vec<Tok>,
    subs: Vec<String>,
    /// Here-document delimiters waiting for the next newline, with the index
    /// of the redirection token whose target becomes the document.
    heredocs: Vec<(String, bool, usize)>,
    _src: &'a str,
}

/// Splits a command line into pipelines of simple commands.
pub fn parse(src: &str) -> Result<Script, ParseError> {
    let mut lx = Lexer { chars: src.chars().collect(), i: 0, toks: vec![], subs: vec![], heredocs: vec![], _src: src };
    lx.run()?;
    Ok(build(lx.toks, lx.subs))
}

impl Lexer<'_> {
    fn peek(&self, off: usize) -> Option<char> {
        self.chars.get(self.i + off).copied()
    }

    fn run(&mut self) -> Result<(), ParseError> {
        let mut word = Word::default();
        let mut in_word = false;
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' => {
                    self.end_word(&mut word, &mut in_word);
                    self.i += 1;
                }
                '#' if !in_word => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.i += 1;
                    }
                }
                '\n' => {
                    self.end_word(&mut word, &mut in_word);
                    self.i += 1;
                    self.toks.push(Tok::Op("\n"));
                    self.read_heredocs();
                }
                '\'' => {
                    in_word = true;
                    self.i += 1;
                    loop {
                        match self.peek(0) {
                            None => return Err(ParseError::Unterminated("single quote")),
                            Some('\'') => break,
                            Some(c) => word.text.push(c),
                        }
                        self.i += 1;
                    }
                    self.i += 1;
                }
                '"' => {
                    in_word = true;
                    self.i += 1;
                    loop {
                        match self.peek(0) {
                            None => return Err(ParseError::Unterminated("double quote")),
                            Some('"') => break,
                            Some('\\') if matches!(self.peek(1), Some('"' | '\\' | '$' | '`' | '\n')) => {
                                if let Some(n) = self.peek(1).filter(|c| *c != '\n') {
                                    word.text.push(n);
                                }
                                self.i += 2;
                                continue;
                            }
                            Some('$') | Some('`') => {
                                self.expansion(&mut word)?;
                                continue;
                            }
                            Some(c) => word.text.push(c),
                        }
                        self.i += 1;
                    }
                    self.i += 1;
                }
                '\\' => {
                    in_word = true;
                    match self.peek(1) {
                        Some('\n') => {}
                        Some(n) => word.text.push(n),
                        None => {}
                    }
                    self.i += 2;
                }
                '$' | '`' => {
                    in_word = true;
                    self.expansion(&mut word)?;
                }
                '|' | '&' | ';' | '(' | ')' => {
                    self.end_word(&mut word, &mut in_word);
                    let two: String = [c, self.peek(1).unwrap_or(' ')].iter().collect();
                    let op = match two.as_str() {
                        "||" => "||",
                        "&&" => "&&",
                        "|&" => "|&",
                        ";;" => ";",
                        "&>" => {
                            self.redirect("&>".into());
                            continue;
                        }
                        _ => match c {
                            '|' => "|",
                            '&' => "&",
                            ';' => ";",
                            '(' => "(",
                            _ => ")",
                        },
                    };
                    self.i += op.len();
                    self.toks.push(Tok::Op(op));
                }
                '<' | '>' => {
                    // `2>` / `10<`: a file-descriptor number glued to the operator.
                    let fd = if in_word && !word.dynamic && word.text.chars().all(|c| c.is_ascii_digit()) {
                        in_word = false;
                        std::mem::take(&mut word.text)
                    } else {
                        self.end_word(&mut word, &mut in_word);
                        String::new()
                    };
                    self.redirect(fd);
                }
                c => {
                    in_word = true;
                    word.text.push(c);
                    self.i += 1;
                }
            }
        }
        self.end_word(&mut word, &mut in_word);
        Ok(())
    }

    fn end_word(&mut self, word: &mut Word, in_word: &mut bool) {
        if *in_word {
            self.toks.push(Tok::Word(std::mem::take(word)));
            *in_word = false;
        }
    }

    /// Reads a redirection operator starting at the current char (after an
    /// optional fd prefix already consumed into `prefix`).
    fn redirect(&mut self, prefix: String) {
        let mut op = prefix;
        if op == "&>" {
            self.i += 2;
        } else {
            let c = self.peek(0).unwrap_or('>');
            op.push(c);
            self.i += 1;
            while let Some(n) = self.peek(0) {
                let more = matches!((c, n), ('>', '>' | '|' | '&') | ('<', '<' | '&' | '>' | '-'));
                if !more || op.len() >= 4 {
                    break;
                }
                op.push(n);
                self.i += 1;
            }
        }
        if (op.ends_with("<<") && !op.ends_with("<<<")) || op.ends_with("<<-") {
            // The delimiter is the next word; the document starts after the next newline.
            while self.peek(0).is_some_and(|c| c == ' ' || c == '\t') {
                self.i += 1;
            }
            let mut delim = String::new();
            while let Some(c) = self.peek(0) {
                if c.is_whitespace() || matches!(c, ';' | '|' | '&' | '<' | '>' | '(' | ')') {
                    break;
                }
                if !matches!(c, '\'' | '"' | '\\') {
                    delim.push(c);
                }
                self.i += 1;
            }
            self.toks.push(Tok::Redir(op.clone()));
            let idx = self.toks.len();
            self.toks.push(Tok::Word(Word { text: String::new(), dynamic: false }));
            self.heredocs.push((delim, op.ends_with('-'), idx));
            return;
        }
        self.toks.push(Tok::Redir(op));
    }

    fn read_heredocs(&mut self) {
        for (delim, strip, idx) in std::mem::take(&mut self.heredocs) {
            let mut body = String::new();
            loop {
                if self.i >= self.chars.len() {
                    break;
                }
                let start = self.i;
                while self.peek(0).is_some_and(|c| c != '\n') {
                    self.i += 1;
                }
                let line: String = self.chars[start..self.i].iter().collect();
                self.i = (self.i + 1).min(self.chars.len());
                let cmp = if strip { line.trim_start_matches('\t') } else { line.as_str() };
                if cmp == delim {
                    break;
                }
                body.push_str(&line);
                body.push('\n');
            }
            if let Some(Tok::Word(w)) = self.toks.get_mut(idx) {
                w.text = body;
            }
        }
    }

    /// `$VAR`, `${…}`, `$(…)`, `$((…))` or a backtick substitution.
    fn expansion(&mut self, word: &mut Word) -> Result<(), ParseError> {
        if self.peek(0) == Some('`') {
            self.i += 1;
            let mut inner = String::new();
            loop {
                match self.peek(0) {
                    None => return Err(ParseError::Unterminated("backquote")),
                    Some('`') => break,
                    Some('\\') if self.peek(1).is_some() => {
                        inner.push(self.peek(1).unwrap_or(' '));
                        self.i += 2;
                        continue;
                    }
                    Some(c) => inner.push(c),
                }
                self.i += 1;
            }
            self.i += 1;
            word.dynamic = true;
            word.text.push_str("$(…)");
            self.subs.push(inner);
            return Ok(());
        }
        // At a `$`.
        match self.peek(1) {
            Some('(') => {
                let arith = self.peek(2) == Some('(');
                self.i += 2;
                let inner = self.balanced('(', ')')?;
                word.dynamic = true;
                if arith {
                    word.text.push_str("$((…))");
                } else {
                    word.text.push_str("$(…)");
                    self.subs.push(inner);
                }
            }
            Some('{') => {
                self.i += 2;
                let inner = self.balanced('{', '}')?;
                word.dynamic = true;
                word.text.push_str(&format!("${{{inner}}}"));
            }
            Some(c) if c.is_ascii_alphanumeric() || matches!(c, '_' | '@' | '*' | '#' | '?' | '$' | '!' | '-') => {
                word.dynamic = true;
                word.text.push('$');
                self.i += 1;
                if c.is_ascii_alphabetic() || c == '_' {
                    while let Some(c) = self.peek(0).filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
                        word.text.push(c);
                        self.i += 1;
                    }
                } else {
                    word.text.push(c);
                    self.i += 1;
                }
            }
            _ => {
                word.text.push('$');
                self.i += 1;
            }
        }
        Ok(())
    }

    /// Text up to the matching `close` (the opener already consumed),
    /// minding quotes; consumes the closer.
    fn balanced(&mut self, open: char, close: char) -> Result<String, ParseError> {
        let mut depth = 1;
        let mut out = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = self.peek(0) {
            self.i += 1;
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some('"'), '\\') => {
                    out.push(c);
                    if let Some(n) = self.peek(0) {
                        out.push(n);
                        self.i += 1;
                    }
                    continue;
                }
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '\\') => {
                    out.push(c);
                    if let Some(n) = self.peek(0) {
                        out.push(n);
                        self.i += 1;
                    }
                    continue;
                }
                (None, c) if c == open => depth += 1,
                (None, c) if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(out);
                    }
                }
                _ => {}
            }
            out.push(c);
        }
        Err(ParseError::Unterminated("substitution"))
    }
}

fn build(toks: Vec<Tok>, subs: Vec<String>) -> Script {
    let mut script = Script { pipelines: vec![], substitutions: subs };
    let mut pipe = Pipeline::default();
    let mut cmd = SimpleCommand::default();
    let mut toks = toks.into_iter().peekable();
    let flush_cmd = |pipe: &mut Pipeline, cmd: &mut SimpleCommand| {
        if !cmd.argv.is_empty() || !cmd.redirects.is_empty() || !cmd.assignments.is_empty() {
            pipe.commands.push(std::mem::take(cmd));
        }
    };
    while let Some(t) = toks.next() {
        match t {
            Tok::Word(w) => {
                let is_assign = cmd.argv.is_empty()
                    && w.text.split_once('=').is_some_and(|(n, _)| {
                        !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    });
                if is_assign {
                    cmd.assignments.push(w.text);
                } else if cmd.argv.is_empty() && matches!(w.text.as_str(), "{" | "}" | "!") {
                    // Grouping and negation words do not name a program.
                } else {
                    cmd.argv.push(w);
                }
            }
            Tok::Redir(op) => {
                let target = match toks.peek() {
                    Some(Tok::Word(_)) => match toks.next() {
                        Some(Tok::Word(w)) => w.text,
                        _ => String::new(),
                    },
                    _ => String::new(),
                };
                cmd.redirects.push(Redirect { op, target });
            }
            Tok::Op("|") | Tok::Op("|&") => flush_cmd(&mut pipe, &mut cmd),
            Tok::Op(_) => {
                flush_cmd(&mut pipe, &mut cmd);
                if !pipe.commands.is_empty() {
                    script.pipelines.push(std::mem::take(&mut pipe));
                }
            }
        }
    }
    flush_cmd(&mut pipe, &mut cmd);
    if !pipe.commands.is_empty() {
        script.pipelines.push(pipe);
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argvs(src: &str) -> Vec<Vec<Vec<String>>> {
        let s = parse(src).unwrap();
        s.pipelines
            .iter()
            .map(|p| p.commands.iter().map(|c| c.argv.iter().map(|w| w.text.clone()).collect()).collect())
            .collect()
    }

    #[test]
    fn quotes_are_removed_and_operators_split() {
        assert_eq!(
            argvs(r#"r""m -rf '/tmp/a b' "c\"d" e\ f"#),
            vec![vec![vec!["rm", "-rf", "/tmp/a b", "c\"d", "e f"]]]
        );
        assert_eq!(
            argvs("a | b && c; d || e & f"),
            vec![vec![vec!["a"], vec!["b"]], vec![vec!["c"]], vec![vec!["d"]], vec![vec!["e"]], vec![vec!["f"]]]
        );
        assert_eq!(argvs("echo 'a | b; c'"), vec![vec![vec!["echo", "a | b; c"]]]);
    }

    #[test]
    fn redirections_assignments_and_heredocs() {
        let s = parse("FOO=1 cmd 2>>/var/log/x >out <in\ncat <<'EOF' | sh\nrm -rf /\nEOF\necho done").unwrap();
        let c = &s.pipelines[0].commands[0];
        assert_eq!(c.assignments, ["FOO=1"]);
        assert_eq!(c.argv.len(), 1);
        let ops: Vec<(&str, &str)> = c.redirects.iter().map(|r| (r.op.as_str(), r.target.as_str())).collect();
        assert_eq!(ops, [("2>>", "/var/log/x"), (">", "out"), ("<", "in")]);
        assert_eq!(s.pipelines[1].commands[0].redirects[0].target, "rm -rf /\n");
        assert_eq!(s.pipelines[2].commands[0].argv[0].text, "echo");
    }

    #[test]
    fn substitutions_are_kept() {
        let s = parse("echo \"$(rm -rf ~)\" `id` $((1+2)) $HOME").unwrap();
        assert_eq!(s.substitutions, ["rm -rf ~", "id"]);
        assert!(s.pipelines[0].commands[0].argv[1].dynamic);
        assert!(parse("echo 'oops").is_err());
    }
}
