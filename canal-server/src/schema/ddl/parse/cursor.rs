//! [`Cur`]: a cursor over one statement's (or clause's) tokens, with the keyword, identifier and
//! balanced-group readers every statement reader uses.

use sqlparser::tokenizer::Token;

use crate::schema::ddl::lex::{ident_of, is_kw};
use crate::schema::ddl::stmt::QName;

/// A cursor over one statement's (or clause's) tokens. Reading past the end yields `None`.
pub(super) struct Cur<'a> {
    toks: &'a [Token],
    i: usize,
}

impl<'a> Cur<'a> {
    pub(super) fn new(toks: &'a [Token]) -> Self {
        Cur { toks, i: 0 }
    }

    pub(super) fn peek(&self) -> Option<&'a Token> {
        self.toks.get(self.i)
    }

    pub(super) fn peek_at(&self, n: usize) -> Option<&'a Token> {
        self.toks.get(self.i.saturating_add(n))
    }

    pub(super) fn bump(&mut self) -> Option<&'a Token> {
        let t = self.toks.get(self.i);
        if t.is_some() {
            self.i += 1;
        }
        t
    }

    pub(super) fn done(&self) -> bool {
        self.i >= self.toks.len()
    }

    pub(super) fn rest(&self) -> &'a [Token] {
        self.toks.get(self.i..).unwrap_or(&[])
    }

    /// The current position, for [`Cur::rewind`].
    pub(super) fn mark(&self) -> usize {
        self.i
    }

    /// Moves back to a position taken with [`Cur::mark`].
    pub(super) fn rewind(&mut self, mark: usize) {
        self.i = mark;
    }

    pub(super) fn is(&self, kw: &str) -> bool {
        is_kw(self.peek(), kw)
    }

    pub(super) fn is_at(&self, n: usize, kw: &str) -> bool {
        is_kw(self.peek_at(n), kw)
    }

    pub(super) fn eat(&mut self, kw: &str) -> bool {
        if self.is(kw) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Eats the whole keyword sequence or nothing.
    pub(super) fn eat_seq(&mut self, kws: &[&str]) -> bool {
        if kws.iter().enumerate().all(|(n, kw)| self.is_at(n, kw)) {
            self.i += kws.len();
            true
        } else {
            false
        }
    }

    pub(super) fn eat_tok(&mut self, tok: &Token) -> bool {
        if self.peek() == Some(tok) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn ident(&mut self) -> Option<String> {
        let id = ident_of(self.peek())?;
        self.i += 1;
        Some(id)
    }

    /// `name` or `schema.name`.
    pub(super) fn qname(&mut self) -> Option<QName> {
        let first = self.ident()?;
        if self.peek() == Some(&Token::Period) {
            if let Some(second) = ident_of(self.peek_at(1)) {
                self.i += 2;
                return Some(QName {
                    schema: Some(first),
                    name: second,
                });
            }
        }
        Some(QName {
            schema: None,
            name: first,
        })
    }

    /// Skips one token, or a whole balanced `( … )` group.
    pub(super) fn skip_item(&mut self) {
        if self.peek() == Some(&Token::LParen) {
            self.group();
        } else {
            self.bump();
        }
    }

    /// At `(`: returns the tokens inside the balanced group and moves past its `)` (or to the
    /// end when unbalanced). Elsewhere returns `None` and does not move.
    pub(super) fn group(&mut self) -> Option<&'a [Token]> {
        if self.peek() != Some(&Token::LParen) {
            return None;
        }
        let start = self.i + 1;
        let mut depth = 0usize;
        while let Some(t) = self.bump() {
            match t {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Some(self.toks.get(start..self.i - 1).unwrap_or(&[]));
                    }
                }
                _ => {}
            }
        }
        Some(self.toks.get(start..).unwrap_or(&[]))
    }

    /// Skips `WAIT n` / `NOWAIT`.
    pub(super) fn skip_wait(&mut self) {
        if self.eat("NOWAIT") {
            return;
        }
        if self.is("WAIT") && matches!(self.peek_at(1), Some(Token::Number(..))) {
            self.i += 2;
        }
    }

    /// `IF NOT EXISTS`.
    pub(super) fn if_not_exists(&mut self) -> bool {
        self.eat_seq(&["IF", "NOT", "EXISTS"])
    }

    /// `IF EXISTS`.
    pub(super) fn if_exists(&mut self) -> bool {
        self.eat_seq(&["IF", "EXISTS"])
    }
}
