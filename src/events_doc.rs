//! `docs/events.md`, the event reference a city hands to a line system's vendor,
//! generated from the plan: one section per event type (what it means, which KPIs it
//! feeds, each field with its Japanese name and allowed values, an NDJSON example and a
//! CSV mapping example) and the rules every sender follows, in Japanese and English.

use std::fmt::Write as _;

use mieruka_aggregator::plan::{KpiKind, Plan, HORIZON_YEARS};
use mieruka_ingest::contract::{example_line, example_value, file_name};
use mieruka_ingest::schema::{EventType, Field, FieldKind, DEFAULT_BOUND};
use mieruka_ingest::Schema;

/// The Markdown of `docs/events.md` for `plan`.
pub fn events_md(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "# イベント仕様 / Event reference\n\n\
         <!-- Generated from the plan by `mieruka schema --out docs`; do not edit by hand \
         (a test fails while this file is stale). -->\n\n\
         計画 / Plan: **{}** ({}), `{}`.\n\n",
        plan.name_ja, plan.name_en, plan.id
    );
    out.push_str(INTRO);
    out.push_str(&rules(plan));
    out.push_str("## 目次 / Event types\n\n");
    for ty in sorted_types(&plan.schema) {
        let _ = writeln!(
            out,
            "- [`{}`](#{}) {}",
            ty.name,
            anchor(&ty.name),
            ty.doc.name_ja
        );
    }
    out.push('\n');
    for ty in sorted_types(&plan.schema) {
        section(&mut out, plan, ty);
    }
    out
}

const INTRO: &str = "\
この文書は、基幹系・業務システムが mieruka に送るイベントの仕様です。機械が読める同じ内容が \
[`schema/`](schema/)（イベント種別ごとの JSON Schema 2020-12）と [`openapi.json`](openapi.json)\
（`POST /v1/events` の OpenAPI 3.1）にあり、稼働中の mieruka からも `GET /v1/schema` と \
`GET /v1/openapi.json` で取得できます。\n\n\
This page specifies the events a line system sends to mieruka. The same contract, for \
machines, is in [`schema/`](schema/) (one JSON Schema 2020-12 per event type) and \
[`openapi.json`](openapi.json) (OpenAPI 3.1 of `POST /v1/events`); a running mieruka \
serves them at `GET /v1/schema` and `GET /v1/openapi.json`.\n\n";

/// The rules every sender follows, in both languages.
fn rules(plan: &Plan) -> String {
    let horizon = plan.baseline_year.0 - HORIZON_YEARS;
    format!(
        "## 送信のルール / Rules for every sender\n\n\
| | 日本語 | English |\n|---|---|---|\n\
| 共通項目 / envelope | 各イベントは `event_id`, `source`, `type`, `occurred_at`, `data`（取消のみ `voids`）を持つ JSON オブジェクトです。他のキーは拒否されます。 | Each event is a JSON object with `event_id`, `source`, `type`, `occurred_at`, `data` (and `voids` for a void only); any other key is refused. |\n\
| ID | `event_id` は送信元（`source`）の中で一意で、再出力しても変わらない値にしてください（1〜128文字、制御文字不可）。同じ `source` と `event_id` で内容が違うものは `conflicting_duplicate` として拒否され、最初のものが残ります。 | `event_id` is unique within its `source` and stays the same when the line system exports the event again (1–128 characters, no control characters). The same `source` and `event_id` with another body is refused as `conflicting_duplicate`; the first one stands. |\n\
| 時刻 / time | `occurred_at` は RFC 3339 で時差を付けて書きます（`2026-05-01T10:15:00+09:00` または `…Z`）。年度は日本の会計年度（4月1日 0時 JST 始まり）です。{horizon}年4月1日より前、または現在より1日（設定値）を超えて先の時刻は拒否されます。 | `occurred_at` is RFC 3339 with an offset (`2026-05-01T10:15:00+09:00` or `…Z`). Fiscal years start on 1 April 00:00 JST. Times before 1 April {horizon}, or more than a day (configurable) past now, are refused. |\n\
| 再送 / re-sends | 応答が得られなかった要求（タイムアウト、503）は、そのまま全体を再送して構いません。同じイベントは一度だけ数えられ、`duplicates` として報告されます。 | A request whose reply was lost (a timeout, a 503) may be re-sent whole: an event is counted once, and reported under `duplicates`. |\n\
| 取消 / voids | 誤って送ったイベントは削除せず、`event.voided` で取り消します（`voids` に同じ `source` の `event_id`）。スナップショットと取消は取り消せません。スナップショットは新しいスナップショットで訂正します。 | A wrong event is never deleted: send `event.voided` with its `event_id` (same `source`) in `voids`. Snapshots and voids cannot be voided; a newer snapshot corrects a snapshot. |\n\
| 個人番号 / personal numbers | イベントは件数と区分だけを運び、個人を運びません。12桁の数字を ID などに使わないでください。検査用数字が合う12桁の数字列（マイナンバーの形）を含むイベントは、どのフィールドにあっても `personal_number` として拒否され、値は保存も表示もされません。 | Events carry counts and categories, never a person. Never use a 12-digit number as an id or anywhere else: an event holding a 12-digit run with a valid check digit (the shape of a My Number) in any field is refused as `personal_number`, and the value is neither stored nor shown. |\n\
| 数値 / numbers | 整数は整数表記で（`1.0` や `1e0` は不可）、小数は定められた桁数までで送ります（丸めずに拒否）。 | Integers are written in integer notation (not `1.0` or `1e0`); decimals with at most their declared places (more is refused, never rounded). |\n\
| 応答 / replies | 1件ずつの結果は 200 応答の `rejected` に理由コード付きで返ります（[bad-input.md](bad-input.md)）。 | Each refused event is listed in the 200 reply's `rejected`, with its reason code ([bad-input.md](bad-input.md)). |\n\n"
    )
}

fn sorted_types(schema: &Schema) -> Vec<&EventType> {
    let mut types: Vec<&EventType> = schema.types().iter().collect();
    types.sort_by(|a, b| a.name.cmp(&b.name));
    types
}

/// GitHub's anchor of a `## \`name\`` heading.
fn anchor(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

fn section(out: &mut String, plan: &Plan, ty: &EventType) {
    let _ = write!(
        out,
        "## `{}`\n\n{}\n\n- 意味: {}\n- Meaning: {}\n- JSON Schema: [`schema/{}`](schema/{})\n",
        ty.name,
        ty.doc.name_ja,
        ty.doc.description_ja,
        ty.doc.description,
        file_name(&ty.name),
        file_name(&ty.name)
    );
    let kpis = kpis_fed(plan, ty);
    if kpis.is_empty() {
        out.push_str("- 反映されるKPI / Feeds: なし（他のイベントの取消など）/ no KPI directly\n");
    } else {
        out.push_str("- 反映されるKPI / Feeds:\n");
        for k in kpis {
            let _ = writeln!(out, "  - {k}");
        }
    }
    out.push('\n');
    fields_table(out, &plan.schema, ty);
    let example = example_line(&plan.schema, ty);
    let _ = write!(
        out,
        "NDJSON の例 / NDJSON example:\n\n```json\n{example}\n```\n\n"
    );
    csv_example(out, &plan.schema, ty);
}

/// The KPIs a type feeds, as "id name_ja (name_en)".
fn kpis_fed(plan: &Plan, ty: &EventType) -> Vec<String> {
    let Some(id) = plan.schema.type_id(&ty.name) else {
        return Vec::new();
    };
    let measures: Vec<_> = plan.routes[usize::from(id.0)]
        .iter()
        .map(|r| r.measure)
        .collect();
    let milestones = plan.milestone_fields[usize::from(id.0)].is_some();
    plan.kpis
        .iter()
        .filter(|k| match &k.kind {
            KpiKind::Measure(m) | KpiKind::Recurring(m) => measures.contains(m),
            KpiKind::Ratio {
                numerator,
                denominator,
                ..
            } => measures.contains(numerator) || measures.contains(denominator),
            KpiKind::Milestone { .. } => milestones,
        })
        .map(|k| format!("`{}` {}（{}）", k.id, k.name_ja, k.name_en))
        .collect()
}

fn fields_table(out: &mut String, schema: &Schema, ty: &EventType) {
    if ty.voids {
        out.push_str("`data` は空のオブジェクト `{}` です。`voids`（必須）に取り消す `event_id` を入れます。 / `data` is the empty object `{}`; `voids` (required) holds the `event_id` retracted.\n\n");
        return;
    }
    out.push_str("| フィールド / field | 日本語名 | 種類 / kind | 必須 / required | 値 / values |\n|---|---|---|---|---|\n");
    for f in &ty.fields {
        let required = if f.required {
            "必須 / yes"
        } else {
            "任意 / no"
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            f.name,
            f.doc.name_ja,
            kind_name(f),
            required,
            values_text(schema, ty, f)
        );
    }
    for &(a, b) in &ty.rules {
        let _ = writeln!(
            out,
            "\n規則 / rule: `data.{a}` ≤ `data.{b}`（違反は `cross_field` / else `cross_field`）",
            a = ty.fields[a].name,
            b = ty.fields[b].name
        );
    }
    out.push('\n');
}

fn kind_name(f: &Field) -> &'static str {
    match f.kind {
        FieldKind::Int { .. } => "整数 / integer",
        FieldKind::Decimal { .. } => "小数 / decimal",
        FieldKind::Enum { .. } => "区分 / enum",
        FieldKind::Id => "ID / id",
        FieldKind::Stage { .. } => "段階 / stage",
    }
}

fn values_text(schema: &Schema, ty: &EventType, f: &Field) -> String {
    let mut text = match &f.kind {
        FieldKind::Int { min, max } => range(&min.to_string(), &max.to_string(), *min, *max),
        FieldKind::Decimal { scale, min, max } => {
            let p = 10i64.pow(*scale);
            let (lo, hi) = (
                mieruka_ingest::event::fixed_to_string(*min, *scale),
                mieruka_ingest::event::fixed_to_string(*max, *scale),
            );
            format!(
                "{}; 小数{scale}桁まで / at most {scale} decimal places",
                range(&lo, &hi, min / p, max / p)
            )
        }
        FieldKind::Enum { values } => values
            .iter()
            .enumerate()
            .map(
                |(i, v)| match f.doc.values_ja.get(i).filter(|n| !n.is_empty()) {
                    Some(ja) => format!("`{v}`（{ja}）"),
                    None => format!("`{v}`"),
                },
            )
            .collect::<Vec<_>>()
            .join(", "),
        FieldKind::Id => {
            "1〜128文字、個人名・個人番号は不可 / 1–128 characters, never a person's name or number"
                .to_owned()
        }
        FieldKind::Stage { of } => stages_text(schema, &ty.fields[*of].name),
    };
    if let Some(d) = &f.doc.default {
        let _ = write!(text, "; 省略時 / default `{d}`");
    }
    text
}

/// `min`〜`max`, the default bound written as "no bound".
fn range(lo: &str, hi: &str, min: i64, max: i64) -> String {
    let lo = if min <= -DEFAULT_BOUND {
        "−10^9".to_owned()
    } else {
        lo.to_owned()
    };
    let hi = if max >= DEFAULT_BOUND {
        "10^9".to_owned()
    } else {
        hi.to_owned()
    };
    format!("{lo}〜{hi}")
}

fn stages_text(schema: &Schema, of: &str) -> String {
    let lists: Vec<String> = schema
        .milestones()
        .into_iter()
        .map(|(kpi, stages)| {
            let ids: Vec<String> = stages.iter().map(|s| format!("`{s}`")).collect();
            format!("`{of}` = `{kpi}`: {}", ids.join(", "))
        })
        .collect();
    format!(
        "`{of}` が示すマイルストーンKPIの段階 / a stage of the milestone KPI in `{of}`:<br>{}",
        lists.join("<br>")
    )
}

/// A CSV file of the type and the `[csv_mappings]` table that imports it.
fn csv_example(out: &mut String, schema: &Schema, ty: &EventType) {
    if ty.voids {
        out.push_str("CSV: 取消は CSV では送れません（`voids` を対応付ける列がありません）。NDJSON か JSON で送ってください。 / Voids cannot be imported from CSV (no column maps to `voids`): send them as NDJSON or JSON.\n\n");
        return;
    }
    let header = |f: &Field| {
        if f.doc.name_ja.is_empty() {
            f.name.clone()
        } else {
            f.doc.name_ja.clone()
        }
    };
    let mut cols = vec!["受付番号".to_owned(), "日時".to_owned()];
    let mut row = vec!["2026-000123".to_owned(), "2026/05/01 10:15:00".to_owned()];
    let mut toml = format!(
        "[csv_mappings.{}]\nsource = \"line-system-a\"\ntype = \"{}\"\nevent_id = \"受付番号\"\noccurred_at = \"日時\"\n",
        ty.name.replace('.', "_"),
        ty.name
    );
    for f in &ty.fields {
        cols.push(header(f));
        let _ = writeln!(toml, "fields.{} = \"{}\"", f.name, header(f));
        let value = example_value(schema, ty, f);
        let cell = match (&f.kind, value.as_str()) {
            (FieldKind::Enum { values }, Some(v)) => {
                let ix = values.iter().position(|x| x == v);
                ix.and_then(|i| f.doc.values_ja.get(i))
                    .filter(|n| !n.is_empty())
                    .cloned()
                    .unwrap_or_else(|| v.to_owned())
            }
            (_, Some(v)) => v.to_owned(),
            (_, None) => value.to_string(),
        };
        row.push(cell);
        if let FieldKind::Enum { values } = &f.kind {
            let pairs: Vec<String> = values
                .iter()
                .zip(&f.doc.values_ja)
                .filter(|(_, ja)| !ja.is_empty())
                .map(|(v, ja)| format!("\"{ja}\" = \"{v}\""))
                .collect();
            if !pairs.is_empty() {
                let _ = writeln!(toml, "values.{} = {{ {} }}", f.name, pairs.join(", "));
            }
        }
    }
    let _ = write!(
        out,
        "CSV の例と取込設定 / CSV example and its mapping ([csv-mapping.md](csv-mapping.md)):\n\n```csv\n{}\n{}\n```\n\n```toml\n{toml}```\n\n",
        cols.join(","),
        row.join(",")
    );
}
