//! Markdown (CommonMark) rendered as Slack mrkdwn, escaped.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// Escapes the three characters Slack's text formats give meaning to.
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Markdown (CommonMark) as Slack mrkdwn: `**bold**` → `*bold*`, `*it*`/`_it_` → `_it_`,
/// `~~gone~~` → `~gone~`, `[text](url)` → `<url|text>`, headings → bold lines, lists as `•`
/// or numbered lines (nested ones indented), quotes as `>` lines, code kept; `&`, `<` and `>`
/// escaped everywhere. Raw HTML is shown as text; a link whose target is not `http`,
/// `https` or `mailto` keeps only its text.
pub(crate) fn mrkdwn(markdown: &str) -> String {
    let mut writer = Mrkdwn::default();
    for event in Parser::new_ext(
        markdown,
        Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS,
    ) {
        writer.event(event);
    }
    writer.out.trim_end().to_owned()
}

#[derive(Clone, Copy)]
enum Span {
    Bold,
    Italic,
    Strike,
}

/// The state of a Markdown → mrkdwn conversion.
#[derive(Default)]
struct Mrkdwn {
    out: String,
    /// Open lists: the next number of an ordered one, `None` for bullets.
    lists: Vec<Option<u64>>,
    /// Inside a block quote.
    quote: usize,
    /// Inside a code block: text goes out as it is (escaped).
    code_block: bool,
    /// Open bold / italic / strike spans (headings count as bold): nested ones add no marker.
    bold: usize,
    italic: usize,
    strike: usize,
    /// Inside a link: its target and the text gathered so far.
    link: Option<(String, String)>,
    /// An item marker was just written: the item's first paragraph starts on its line.
    item_start: bool,
}

impl Mrkdwn {
    fn push(&mut self, text: &str) {
        match &mut self.link {
            Some((_, gathered)) => gathered.push_str(text),
            None => self.out.push_str(text),
        }
    }

    fn newline(&mut self) {
        self.out.push('\n');
        if self.quote > 0 {
            self.out.push_str("> ");
        }
    }

    /// Drops trailing spaces and a quote prefix that begins an empty line (never a `>`
    /// that closes a link).
    fn trim_line_end(&mut self) {
        let trimmed = self.out.trim_end_matches(' ').len();
        self.out.truncate(trimmed);
        if self.out.ends_with("\n>") {
            self.out.pop();
        }
    }

    /// Starts a block: after an empty line, unless it opens a list item's line.
    fn block(&mut self) {
        if std::mem::take(&mut self.item_start) || self.out.is_empty() {
            return;
        }
        self.trim_line_end();
        if self.lists.is_empty() {
            self.out.push('\n');
            if self.quote > 0 {
                self.out.push_str(">\n> ");
            } else {
                self.out.push('\n');
            }
        } else {
            self.newline();
        }
    }

    /// Opens or closes a span; only the outermost of nested same spans writes its marker.
    fn span(&mut self, which: Span, opening: bool) {
        let (depth, marker) = match which {
            Span::Bold => (&mut self.bold, "*"),
            Span::Italic => (&mut self.italic, "_"),
            Span::Strike => (&mut self.strike, "~"),
        };
        let outermost = if opening {
            *depth += 1;
            *depth == 1
        } else {
            *depth = depth.saturating_sub(1);
            *depth == 0
        };
        if outermost {
            self.push(marker);
        }
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) if self.code_block => {
                let mut lines = text.split('\n').peekable();
                while let Some(line) = lines.next() {
                    self.out.push_str(&escape(line));
                    if lines.peek().is_some() {
                        self.newline();
                    }
                }
            }
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => {
                self.item_start = false;
                let text = escape(&text);
                let mut lines = text.split('\n').peekable();
                while let Some(line) = lines.next() {
                    self.push(line);
                    if lines.peek().is_some() && !line.is_empty() {
                        self.newline();
                    }
                }
            }
            Event::Code(code) => {
                self.item_start = false;
                self.push(&format!("`{}`", escape(&code)));
            }
            Event::SoftBreak | Event::HardBreak => match &mut self.link {
                Some((_, gathered)) => gathered.push(' '),
                None => self.newline(),
            },
            Event::Rule => {
                self.block();
                self.out.push_str("———");
            }
            Event::TaskListMarker(done) => self.push(if done { "☑ " } else { "☐ " }),
            _ => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph | Tag::HtmlBlock => self.block(),
            Tag::Heading { .. } => {
                self.block();
                self.span(Span::Bold, true);
            }
            Tag::BlockQuote(_) => {
                self.block();
                if self.quote == 0 {
                    self.out.push_str("> ");
                }
                self.quote += 1;
                self.item_start = true;
            }
            Tag::CodeBlock(_) => {
                self.block();
                self.out.push_str("```");
                self.newline();
                self.code_block = true;
            }
            Tag::List(start) => {
                if self.lists.is_empty() {
                    self.block();
                    self.item_start = true;
                }
                self.lists.push(start);
            }
            Tag::Item => {
                if !std::mem::take(&mut self.item_start) {
                    self.newline();
                }
                let depth = self.lists.len().saturating_sub(1);
                self.out.push_str(&"    ".repeat(depth));
                let marker = match self.lists.last_mut() {
                    Some(Some(number)) => {
                        *number += 1;
                        format!("{}. ", *number - 1)
                    }
                    _ => "• ".to_owned(),
                };
                self.out.push_str(&marker);
                self.item_start = true;
            }
            Tag::Emphasis => {
                self.span(Span::Italic, true);
            }
            Tag::Strong => {
                self.span(Span::Bold, true);
            }
            Tag::Strikethrough => {
                self.span(Span::Strike, true);
            }
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                self.item_start = false;
                self.link = Some((dest_url.to_string(), String::new()));
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(_) | TagEnd::Strong => {
                self.span(Span::Bold, false);
            }
            TagEnd::Emphasis => {
                self.span(Span::Italic, false);
            }
            TagEnd::Strikethrough => {
                self.span(Span::Strike, false);
            }
            TagEnd::BlockQuote(_) => {
                self.quote -= 1;
            }
            TagEnd::CodeBlock => {
                self.code_block = false;
                self.trim_line_end();
                let trimmed = self.out.trim_end_matches('\n').len();
                self.out.truncate(trimmed);
                self.newline();
                self.out.push_str("```");
            }
            TagEnd::List(_) => {
                self.lists.pop();
            }
            TagEnd::Item => self.item_start = false,
            TagEnd::Link | TagEnd::Image => {
                if let Some((url, text)) = self.link.take() {
                    let lower = url.trim().to_ascii_lowercase();
                    let safe = ["http:", "https:", "mailto:"]
                        .iter()
                        .any(|scheme| lower.starts_with(scheme))
                        && !url.chars().any(char::is_control);
                    let target = escape(url.trim()).replace('|', "%7C");
                    let written = match (safe, text.is_empty()) {
                        (false, _) => text,
                        (true, true) => format!("<{target}>"),
                        (true, false) if text == escape(url.trim()) => format!("<{target}>"),
                        (true, false) => format!("<{target}|{text}>"),
                    };
                    self.push(&written);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mrkdwn;

    #[test]
    fn emphasis_becomes_slack_emphasis() {
        assert_eq!(mrkdwn("**bold** and __bold__"), "*bold* and *bold*");
        assert_eq!(mrkdwn("*it* and _it_"), "_it_ and _it_");
        assert_eq!(mrkdwn("~~gone~~ and `a*b`"), "~gone~ and `a*b`");
        assert_eq!(mrkdwn("***both***"), "_*both*_");
        assert_eq!(mrkdwn("**outer *inner* outer**"), "*outer _inner_ outer*");
    }

    #[test]
    fn links_become_slack_links() {
        assert_eq!(
            mrkdwn("see [the runbook](https://example.com/a?b=1&c=2)"),
            "see <https://example.com/a?b=1&amp;c=2|the runbook>"
        );
        assert_eq!(mrkdwn("<https://example.com>"), "<https://example.com>");
        assert_eq!(
            mrkdwn("see [a](https://a.example)\n\nthen [b](https://b.example)"),
            "see <https://a.example|a>\n\nthen <https://b.example|b>",
            "a link that ends a paragraph keeps its closing `>`"
        );
        assert_eq!(
            mrkdwn("[mail](mailto:ops@example.com)"),
            "<mailto:ops@example.com|mail>"
        );
        assert_eq!(
            mrkdwn("[a|b](https://example.com/x|y)"),
            "<https://example.com/x%7Cy|a|b>",
            "a `|` in the target cannot end it early"
        );
        assert_eq!(
            mrkdwn("[click](javascript:alert(1))"),
            "click",
            "a script target keeps only its text"
        );
        assert_eq!(
            mrkdwn("![graph](https://example.com/g.png)"),
            "<https://example.com/g.png|graph>"
        );
    }

    #[test]
    fn headings_become_bold_lines_and_paragraphs_stay_apart() {
        assert_eq!(
            mrkdwn("# Canary report\n\nError rate **0.1 %**.\n\n## Next"),
            "*Canary report*\n\nError rate *0.1 %*.\n\n*Next*"
        );
        assert_eq!(
            mrkdwn("# A **bold** title"),
            "*A bold title*",
            "no marker inside the bold line"
        );
    }

    #[test]
    fn lists_are_kept_as_lines() {
        assert_eq!(mrkdwn("- one\n- **two**\n- three"), "• one\n• *two*\n• three");
        assert_eq!(
            mrkdwn("Steps:\n\n3. drain\n4. deploy"),
            "Steps:\n\n3. drain\n4. deploy"
        );
        assert_eq!(mrkdwn("- a\n  - b\n- c"), "• a\n    • b\n• c");
        assert_eq!(mrkdwn("- [x] done\n- [ ] todo"), "• ☑ done\n• ☐ todo");
        assert_eq!(mrkdwn("- one\n- two\n\nafter"), "• one\n• two\n\nafter");
    }

    #[test]
    fn control_characters_are_escaped_and_html_is_text() {
        assert_eq!(mrkdwn("a < b & c > d"), "a &lt; b &amp; c &gt; d");
        assert_eq!(
            mrkdwn("<script>alert(1)</script> and <!here>"),
            "&lt;script&gt;alert(1)&lt;/script&gt; and &lt;!here&gt;"
        );
        assert_eq!(
            mrkdwn("`<@U123>`"),
            "`&lt;@U123&gt;`",
            "no mention through code either"
        );
    }

    #[test]
    fn code_blocks_and_quotes_are_kept() {
        assert_eq!(mrkdwn("```\nlet a = b < c;\n```"), "```\nlet a = b &lt; c;\n```");
        assert_eq!(mrkdwn("> careful\n> now\n\nok"), "> careful\n> now\n\nok");
        assert_eq!(mrkdwn("line one\nline two"), "line one\nline two");
        assert_eq!(mrkdwn("above\n\n---\n\nbelow"), "above\n\n———\n\nbelow");
    }
}
