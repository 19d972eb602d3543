//! Bar charts drawn on the server as SVG: no script, nothing to load. Each
//! chart is an image with a text alternative, and its figures follow in a
//! table, so no one depends on the picture.

use maud::{html, Markup};

use super::format;

/// One series of a chart: its name and colour (3:1 against white at least).
pub struct Series {
    pub name: &'static str,
    pub colour: &'static str,
}

pub const ISSUED: Series = Series {
    name: "Coupons émis",
    colour: "#1d4f73",
};
pub const REDEEMED: Series = Series {
    name: "Coupons utilisés",
    colour: "#b34a0e",
};
pub const OUTSTANDING: Series = Series {
    name: "Coupons en circulation, encore valables",
    colour: "#5b6470",
};

/// About a phone's width, so the text is drawn near its CSS size there.
const WIDTH: i64 = 360;
const VALUE_WIDTH: i64 = 44;
const BAR_HEIGHT: i64 = 16;
const ROW_GAP: i64 = 14;
/// One line of a row's label, above its bars.
const LABEL_LINE: i64 = 18;
/// Characters of a label line (14 px text on 360 units).
const LABEL_CHARS: usize = 44;
/// One line of the legend per series, above the bars.
const LEGEND_LINE: i64 = 20;

/// A label on at most two lines above its bars, cut at a word where it can;
/// only a label longer than two lines loses its end (the table has it whole).
fn label_lines(label: &str) -> Vec<String> {
    let mut lines: Vec<String> = vec![String::new()];
    for word in label.split_whitespace() {
        let line = lines.last_mut().expect("one line at least");
        let needed = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if needed <= LABEL_CHARS || line.is_empty() {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        } else {
            lines.push(word.to_owned());
        }
    }
    if lines.len() > 2 {
        lines.truncate(2);
        let second: String = lines[1].chars().take(LABEL_CHARS - 1).collect();
        lines[1] = format!("{second}…");
    }
    for line in &mut lines {
        if line.chars().count() > LABEL_CHARS {
            let cut: String = line.chars().take(LABEL_CHARS - 1).collect();
            *line = format!("{cut}…");
        }
    }
    lines
}

/// Horizontal bars, one group per row (its label above), one bar per
/// series; then the same figures as a table. `id` makes the element ids
/// unique on the page.
pub fn bars(id: &str, title: &str, series: &[&Series], rows: &[(String, Vec<i64>)]) -> Markup {
    let max = rows
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let legend = LEGEND_LINE * series.len() as i64 + 6;
    let bars_height = BAR_HEIGHT * series.len() as i64;
    // Each row's top, its label's lines, then the total height.
    let mut top = legend;
    let mut groups = Vec::with_capacity(rows.len());
    for (label, values) in rows {
        let lines = label_lines(label);
        let height = LABEL_LINE * lines.len() as i64 + bars_height + ROW_GAP;
        groups.push((top, lines, values));
        top += height;
    }
    let height = top;
    let plot = WIDTH - VALUE_WIDTH;
    let summary: Vec<String> = rows
        .iter()
        .map(|(label, values)| {
            let figures: Vec<String> = series
                .iter()
                .zip(values)
                .map(|(s, v)| format!("{} {}", s.name.to_lowercase(), format::number(*v)))
                .collect();
            format!("{label} : {}", figures.join(", "))
        })
        .collect();
    html! {
        figure.chart-block aria-labelledby={ (id) "-titre" } {
            figcaption #{ (id) "-titre" } { (title) }
            @if rows.is_empty() {
                p.muted { "Pas encore de données." }
            } @else {
                svg.chart xmlns="http://www.w3.org/2000/svg" role="img"
                    viewBox={ "0 0 " (WIDTH) " " (height) } width=(WIDTH) height=(height)
                    aria-labelledby={ (id) "-svg-titre " (id) "-svg-desc" } {
                    title #{ (id) "-svg-titre" } { (title) }
                    desc #{ (id) "-svg-desc" } { (summary.join(" ; ")) }
                    @for (i, s) in series.iter().enumerate() {
                        @let y = 4 + i as i64 * LEGEND_LINE;
                        rect x="0" y=(y) width="14" height="14" fill=(s.colour) {}
                        text x="20" y=(y + 12) { (s.name) }
                    }
                    @for (top, lines, values) in &groups {
                        @for (n, line) in lines.iter().enumerate() {
                            text.chart__label x="0" y=(top + LABEL_LINE * (n as i64 + 1) - 4) { (line) }
                        }
                        @let bars_top = top + LABEL_LINE * lines.len() as i64;
                        @for (i, (s, value)) in series.iter().zip(values.iter()).enumerate() {
                            @let y = bars_top + i as i64 * BAR_HEIGHT;
                            @let length = (*value * plot / max).max(if *value > 0 { 1 } else { 0 });
                            rect x="0" y=(y + 1) width=(length) height=(BAR_HEIGHT - 2) fill=(s.colour) {}
                            text x=(length + 6) y=(y + BAR_HEIGHT - 3) { (format::number(*value)) }
                        }
                    }
                }
                details.data-table {
                    summary { "Voir les données : " (title.to_lowercase()) }
                    div.table-wrap {
                        table {
                            caption { (title) }
                            thead { tr {
                                th scope="col" { span.visually-hidden { "Catégorie" } }
                                @for s in series { th scope="col" class="num" { (s.name) } }
                            } }
                            tbody {
                                @for (label, values) in rows {
                                    tr {
                                        th scope="row" { (label) }
                                        @for value in values { td.num { (format::number(*value)) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_proportional_and_every_figure_is_also_written() {
        let rows = vec![
            ("Strasbourg".to_owned(), vec![10, 5]),
            (
                "Une organisation au nom vraiment très long".to_owned(),
                vec![4, 0],
            ),
        ];
        let svg = bars("t", "Titre", &[&ISSUED, &REDEEMED], &rows).into_string();
        let plot = WIDTH - VALUE_WIDTH;
        assert!(
            svg.contains(&format!("width=\"{plot}\"")),
            "the largest bar fills the plot"
        );
        assert!(
            svg.contains(&format!("width=\"{}\"", plot / 2)),
            "half of it for 5"
        );
        assert!(svg.contains("width=\"0\""), "nothing drawn for 0");
        assert!(
            svg.contains(">Une organisation au nom vraiment très long</text>"),
            "a long label is drawn whole, above its bars"
        );
        assert!(svg.contains("Strasbourg : coupons émis 10, coupons utilisés 5"));
        assert!(svg.contains("role=\"img\""));
    }

    #[test]
    fn labels_wrap_on_two_lines_and_only_longer_ones_are_cut() {
        let two = "Centre communal d'action sociale de la Communauté européenne d'Alsace";
        let lines = label_lines(two);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines.join(" "), two);
        assert!(lines.iter().all(|l| l.chars().count() <= LABEL_CHARS));
        let long = "mot ".repeat(40);
        let lines = label_lines(&long);
        assert_eq!(lines.len(), 2);
        assert!(lines[1].ends_with('…'));
        assert_eq!(label_lines("Strasbourg"), ["Strasbourg"]);
    }

    #[test]
    fn an_empty_chart_says_so_and_draws_nothing() {
        let html = bars("t", "Titre", &[&ISSUED], &[]).into_string();
        assert!(html.contains("Pas encore de données."));
        assert!(!html.contains("<svg"));
    }
}
