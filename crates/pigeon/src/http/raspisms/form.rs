//! PHP-style request parameters: `name=v`, `name[]=v`, `name[key]=v` and
//! `name[0][number]=v` nest into maps, as PHP builds `$_GET` / `$_POST`. RaspiSMS clients rely
//! on these shapes; serde_qs and friends do not accept "a scalar or a list" for one field, so
//! this small parser is ours.

/// One parameter: a text, or a map of keys (PHP array) in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Text(String),
    Map(Vec<(String, Field)>),
}

impl Field {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Field::Text(t) => Some(t),
            Field::Map(_) => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Field> {
        match self {
            Field::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            Field::Text(_) => None,
        }
    }

    /// A text is one value; a map gives its values in order.
    pub fn values(&self) -> Vec<&Field> {
        match self {
            Field::Text(_) => vec![self],
            Field::Map(entries) => entries.iter().map(|(_, v)| v).collect(),
        }
    }
}

/// All parameters of one source (query string, or body).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, Field)>);

impl Params {
    pub fn parse_urlencoded(bytes: &[u8]) -> Params {
        let mut params = Params::default();
        for (name, value) in form_urlencoded::parse(bytes) {
            params.insert(&name, value.into_owned());
        }
        params
    }

    pub fn get(&self, name: &str) -> Option<&Field> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Field::as_text)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Adds `name=value`, where `name` may carry `[key]` / `[]` suffixes.
    pub fn insert(&mut self, name: &str, value: String) {
        let path = split_name(name);
        insert_path(&mut self.0, &path, value);
    }
}

/// `a[b][]` → `["a", "b", ""]`; a name whose brackets do not close is taken whole.
fn split_name(name: &str) -> Vec<String> {
    let Some(open) = name.find('[') else {
        return vec![name.to_string()];
    };
    let (base, mut rest) = name.split_at(open);
    if base.is_empty() {
        return vec![name.to_string()];
    }
    let mut path = vec![base.to_string()];
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(close) = stripped.find(']') else {
            return vec![name.to_string()];
        };
        path.push(stripped[..close].to_string());
        rest = &stripped[close + 1..];
    }
    path
}

fn insert_path(entries: &mut Vec<(String, Field)>, path: &[String], value: String) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    // `[]` appends under the next integer key, as PHP does.
    let key = if first.is_empty() {
        let next = entries
            .iter()
            .filter_map(|(k, _)| k.parse::<i64>().ok())
            .max()
            .map_or(0, |m| m + 1);
        next.to_string()
    } else {
        first.clone()
    };
    let slot = match entries.iter().position(|(k, _)| *k == key) {
        Some(i) => i,
        None => {
            entries.push((key, Field::Map(Vec::new())));
            entries.len() - 1
        }
    };
    if rest.is_empty() {
        entries[slot].1 = Field::Text(value);
        return;
    }
    if !matches!(entries[slot].1, Field::Map(_)) {
        entries[slot].1 = Field::Map(Vec::new());
    }
    if let Field::Map(children) = &mut entries[slot].1 {
        insert_path(children, rest, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(f: &Field) -> Vec<&str> {
        f.values().iter().filter_map(|v| v.as_text()).collect()
    }

    #[test]
    fn scalars_lists_and_nested_maps() {
        let p = Params::parse_urlencoded(
            b"text=hi&numbers[]=%2B331&numbers[]=%2B332&contacts=11&adapter_data[login]=me&n[0][number]=%2B33&n[0][data]=%7B%7D&n[1][number]=x",
        );
        assert_eq!(p.text("text"), Some("hi"));
        assert_eq!(texts(p.get("numbers").expect("numbers")), ["+331", "+332"]);
        assert_eq!(texts(p.get("contacts").expect("contacts")), ["11"]);
        assert_eq!(
            p.get("adapter_data")
                .and_then(|d| d.get("login"))
                .and_then(Field::as_text),
            Some("me")
        );
        let n = p.get("n").expect("n").values();
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].get("data").and_then(Field::as_text), Some("{}"));
        assert_eq!(n[1].get("number").and_then(Field::as_text), Some("x"));
    }

    #[test]
    fn later_values_win_and_odd_names_stay_whole() {
        let p = Params::parse_urlencoded(b"a=1&a=2&b[=3&[c]=4&d[x]=1&d=5");
        assert_eq!(p.text("a"), Some("2"));
        assert_eq!(p.text("b["), Some("3"));
        assert_eq!(p.text("[c]"), Some("4"));
        assert_eq!(p.text("d"), Some("5"));
    }

    #[test]
    fn explicit_and_appended_indexes_mix() {
        let p = Params::parse_urlencoded(b"x[5]=a&x[]=b&x[foo]=c&x[]=d");
        let keys: Vec<String> = match p.get("x") {
            Some(Field::Map(e)) => e.iter().map(|(k, _)| k.clone()).collect(),
            _ => Vec::new(),
        };
        assert_eq!(keys, ["5", "6", "foo", "7"]);
    }
}
