//! `--show-settings` on stdout: a list per group with each value and where it came from, or
//! with `--format json` `{"command": …, "<group>": {"<setting>": {"value": …, "from": …}}}`.

use crate::cli::OutputFormat;
use crate::settings::shown::ShownSettings;

pub fn settings_summary(shown: &ShownSettings, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        let mut object = serde_json::Map::new();
        object.insert("command".into(), shown.command.into());
        for group in &shown.groups {
            let settings = group
                .settings
                .iter()
                .map(|s| {
                    (s.name.to_owned(), serde_json::json!({ "value": s.value, "from": s.from }))
                })
                .collect();
            object.insert(group.name.to_owned(), serde_json::Value::Object(settings));
        }
        return serde_json::to_string_pretty(&object).unwrap_or_default() + "\n";
    }
    let all = shown.groups.iter().flat_map(|g| &g.settings);
    let name_width = all.clone().map(|s| s.name.len()).max().unwrap_or(0);
    // Long values (a URL, a path) do not push every `from` to the right.
    let value_width = all.map(|s| s.value.chars().count()).filter(|&w| w <= 40).max().unwrap_or(0);
    let mut out = format!(
        "settings of `migrate {}` (nothing was run; secrets are never shown)\n",
        shown.command
    );
    for group in &shown.groups {
        out.push_str(&format!("\n{}\n", group.name));
        for s in &group.settings {
            out.push_str(&format!(
                "  {:name_width$}  {:value_width$}  {}\n",
                s.name, s.value, s.from
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Shown;
    use crate::settings::shown::Group;

    fn shown() -> ShownSettings {
        let s =
            |name, value: &str, from: &str| Shown { name, value: value.into(), from: from.into() };
        ShownSettings {
            command: "export",
            groups: vec![
                Group { name: "general", settings: vec![s("data_dir", "data", "default")] },
                Group {
                    name: "postgres",
                    settings: vec![s("host", "db", "PGHOST"), s("password", "set", "PGPASSWORD")],
                },
            ],
        }
    }

    #[test]
    fn text_aligns_values_and_sources_per_group() {
        assert_eq!(
            settings_summary(&shown(), OutputFormat::Text),
            "settings of `migrate export` (nothing was run; secrets are never shown)\n\n\
             general\n  data_dir  data  default\n\n\
             postgres\n  host      db    PGHOST\n  password  set   PGPASSWORD\n"
        );
    }

    #[test]
    fn json_keys_settings_by_group_and_name() {
        let json: serde_json::Value =
            serde_json::from_str(&settings_summary(&shown(), OutputFormat::Json)).unwrap();
        assert_eq!(json["command"], "export");
        assert_eq!(json["postgres"]["host"], serde_json::json!({"value": "db", "from": "PGHOST"}));
        assert_eq!(json["general"]["data_dir"]["from"], "default");
    }
}
