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

const WIDTH: i64 = 520;
const LABEL_WIDTH: i64 = 180;
const VALUE_WIDTH: i64 = 50;
const BAR_HEIGHT: i64 = 16;
const ROW_GAP: i64 = 12;
const LEGEND_HEIGHT: i64 = 28;

/// Cuts a label to fit its column, on a character boundary.
fn fit(label: &str) -> String {
    const MAX: usize = 26;
    if label.chars().count() <= MAX {
        label.to_owned()
    } else {
        let cut: String = label.chars().take(MAX - 1).collect();
        format!("{cut}…")
    }
}

/// Horizontal bars, one group per row, one bar per series; then the same
/// figures as a table. `id` makes the element ids unique on the page.
pub fn bars(id: &str, title: &str, series: &[&Series], rows: &[(String, Vec<i64>)]) -> Markup {
    let max = rows
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let group_height = BAR_HEIGHT * series.len() as i64 + ROW_GAP;
    let height = LEGEND_HEIGHT + group_height * rows.len() as i64 + ROW_GAP;
    let plot = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
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
                        @let x = LABEL_WIDTH + i as i64 * 150;
                        rect x=(x) y="4" width="14" height="14" fill=(s.colour) {}
                        text x=(x + 20) y="16" { (s.name) }
                    }
                    line.axis x1=(LABEL_WIDTH) x2=(LABEL_WIDTH) y1=(LEGEND_HEIGHT) y2=(height - ROW_GAP / 2) {}
                    @for (row, (label, values)) in rows.iter().enumerate() {
                        @let top = LEGEND_HEIGHT + row as i64 * group_height + ROW_GAP / 2;
                        text x=(LABEL_WIDTH - 8) y=(top + BAR_HEIGHT * series.len() as i64 / 2 + 4) text-anchor="end" { (fit(label)) }
                        @for (i, (s, value)) in series.iter().zip(values).enumerate() {
                            @let y = top + i as i64 * BAR_HEIGHT;
                            @let length = (*value * plot / max).max(if *value > 0 { 1 } else { 0 });
                            rect x=(LABEL_WIDTH) y=(y + 1) width=(length) height=(BAR_HEIGHT - 2) fill=(s.colour) {}
                            text x=(LABEL_WIDTH + length + 6) y=(y + BAR_HEIGHT - 4) { (format::number(*value)) }
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
