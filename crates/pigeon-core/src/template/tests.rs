use super::*;
use serde_json::json;

fn jane() -> (Json, Json) {
    (
        json!({"lastname":"Doe","firstname":"Jane","birthdate":"1992-08-15","gender":"female","vip":"0"}),
        json!({"id": 1, "name": "Jane Doe", "number": "+33612345678"}),
    )
}

fn john() -> (Json, Json) {
    (
        json!({"lastname":"Doe","firstname":"John","birthdate":"1990-10-22","gender":"male","vip":"1"}),
        json!({"id": 2, "name": "John Doe", "number": "+33612345679"}),
    )
}

fn r(text: &str) -> Result<String, TemplateError> {
    let (c, m) = jane();
    render(text, &c, &m)
}

fn ok(text: &str) -> String {
    match r(text) {
        Ok(s) => s,
        Err(e) => panic!("{text:?} failed: {e}"),
    }
}

fn err(text: &str) -> String {
    match r(text) {
        Ok(s) => panic!("{text:?} should fail, rendered {s:?}"),
        Err(TemplateError::Invalid(msg)) => msg,
    }
}

#[test]
fn renders_contact_data() {
    assert_eq!(ok("Bonjour {{contact.firstname}}"), "Bonjour Jane");
    let text =
        "{% if contact.gender == 'male' %}M.{% else %}Mme.{% endif %} {{ contact_metas.name }}";
    assert_eq!(ok(text), "Mme. Jane Doe");
    let (c, m) = john();
    assert_eq!(render(text, &c, &m), Ok("M. John Doe".to_string()));
    // A compiled template renders many recipients.
    let Ok(t) = Template::new(text) else {
        panic!("compile")
    };
    assert_eq!(t.render(&c, &m), Ok("M. John Doe".to_string()));
    let (c, m) = jane();
    assert_eq!(t.render(&c, &m), Ok("Mme. Jane Doe".to_string()));
}

#[test]
fn missing_values_render_empty() {
    assert_eq!(ok("[{{ nothing }}]"), "[]");
    assert_eq!(ok("[{{ contact.name }}]"), "[]");
    assert_eq!(ok("[{{ contact.a.b.c }}]"), "[]");
    assert_eq!(ok("[{{ contact_metas.missing|upper }}]"), "[]");
    assert_eq!(ok("[{% for x in contact.missing %}x{% endfor %}]"), "[]");
    assert_eq!(
        render(
            "[{{ contact.firstname }}]",
            &json!([]),
            &json!({"number": "+33612345678"})
        ),
        Ok("[]".to_string())
    );
    assert_eq!(
        render(
            "[{{ contact.x }}{{ contact.t }}{{ contact.f }}]",
            &json!({"x": null, "t": true, "f": false}),
            &json!({})
        ),
        Ok("[1]".to_string())
    );
}

#[test]
fn plain_text_is_returned_as_is() {
    for text in [
        "Hello {name} }} %} #}",
        "",
        "Ça coûte 5 € 🎉\n",
        "a { b } c",
    ] {
        assert_eq!(ok(text), text);
    }
}

#[test]
fn whitespace_and_multibyte_text_are_preserved() {
    assert_eq!(
        ok("  Salut {{ contact.firstname }} ! 🎉\n\n"),
        "  Salut Jane ! 🎉\n\n"
    );
    assert_eq!(
        ok("Ligne 1\n{% if true %}\nOui\n{% endif %}\nFin"),
        "Ligne 1\nOui\nFin"
    );
    assert_eq!(ok("{{ 'é' ~ contact.firstname|upper }}"), "éJANE");
}

#[test]
fn syntax_errors_are_reported() {
    let msg = err("Bonjour {{ contact.firstname ");
    assert!(msg.starts_with("syntax error"), "{msg}");
    assert!(msg.contains("line 1"), "{msg}");
    assert!(validate("{% if contact.x %}oops").is_err());
    assert!(validate("{{ contact.firstname }}").is_ok());
    assert!(validate("Hello").is_ok());
    let msg = match validate("{{ contact.firstname|nope }}") {
        Err(TemplateError::Invalid(m)) => m,
        Ok(()) => panic!("unknown filter accepted"),
    };
    assert!(msg.contains("unknown filter"), "{msg}");
    assert!(validate("{{ nope() }}").is_err());
    // Data-dependent failures are not validation errors.
    assert!(validate("{{ contact.birthdate|date('d/m/Y') }}").is_ok());
}

#[test]
fn sandbox_rejects_includes_macros_and_recursion() {
    assert!(err("{% include 'x' %}").contains("`include` tags are not allowed"));
    assert!(err("a\n{%- import 'x' as y %}").contains("line 2"));
    assert!(err("{% extends 'x' %}").contains("not allowed"));
    assert!(err("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").contains("`macro`"));
    assert!(err("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}").contains("recursive"));
    // Strings and comments don't count as tags.
    assert_eq!(ok("{{ '{% include x %}' }}"), "{% include x %}");
    assert_eq!(ok("{# {% macro %} #}ok"), "ok");
    assert_eq!(ok("{% raw %}{% macro %}{% endraw %}"), "{% macro %}");
    assert_eq!(
        ok("{% for x in ['recursive'] %}{{ x }}{% endfor %}"),
        "recursive"
    );
    // `debug()` would leak the context.
    assert!(r("{{ debug() }}").is_err());
    assert!(r("{% set ns = namespace(a='x') %}").is_err());
}

#[test]
fn runaway_templates_are_bounded() {
    assert!(err("{% for i in range(100000000) %}x{% endfor %}").contains("range is too large"));
    // Stopped by fuel or by the range budget, whichever runs out first.
    let msg = err("{% for i in range(9000) %}{% for j in range(9000) %}{% endfor %}{% endfor %}");
    assert!(
        msg.contains("too many range items") || msg.contains("fuel"),
        "{msg}"
    );
    assert!(
        err("{% for i in range(5000) %}{% for j in range(10) %}xx{% endfor %}{% endfor %}")
            .contains("too long")
    );
    assert!(err("{{ 'x' * 20000 }}").contains("too long"));
    assert!(err(&"{{ 1 }}".repeat(2000)).contains("template is too long"));
    let deep = format!("{{{{ {}1{} }}}}", "(".repeat(3000), ")".repeat(3000));
    assert!(r(&deep).is_err());
}

#[test]
fn twig_functions_and_filters() {
    let letter = ok("{{ random(range('a','z'))|upper }}");
    assert_eq!(letter.chars().count(), 1, "{letter:?}");
    assert!(letter.chars().all(|c| c.is_ascii_uppercase()), "{letter:?}");
    let n: i64 = ok("{{ random(5) }}").parse().unwrap_or(-1);
    assert!((0..=5).contains(&n));
    let cases: &[(&str, &str)] = &[
        ("{{ range(1, 3)|join(',') }}", "1,2,3"),
        ("{{ range(3, 1)|join(',') }}", "3,2,1"),
        ("{{ range(0, 10, 5)|join(',') }}", "0,5,10"),
        ("{{ range('a', 'e', 2)|join }}", "ace"),
        ("{{ range(3)|join(',') }}", "0,1,2"),
        ("{{ random([7]) }}", "7"),
        ("{{ random('x') }}", "x"),
        ("{{ max(1, 3, 2) }}-{{ min([4, 2, 8]) }}", "3-2"),
        ("{{ contact.nickname|default(contact.firstname) }}", "Jane"),
        ("{{ ''|default('vide') }}", "vide"),
        ("{{ 0|default('vide') }}", "0"),
        ("{{ contact.birthdate|date('d/m/Y') }}", "15/08/1992"),
        (
            "{{ '2024-01-31'|date_modify('+1 day')|date('Y-m-d') }}",
            "2024-02-01",
        ),
        ("{{ date('2024-03-05 10:00')|date('D j M') }}", "Tue 5 Mar"),
        (
            "{{ 'Bonjour'|slice(0, 3) }}|{{ [1,2,3,4]|slice(1, 2)|join }}",
            "Bon|23",
        ),
        (
            "{{ 'Bonjour'|slice(-4) }}|{{ [1,2,3,4]|slice(1, -1)|join }}",
            "jour|23",
        ),
        (
            "{{ 1234567.891|number_format(2, ',', ' ') }}",
            "1 234 567,89",
        ),
        ("{{ 2.5|number_format }}", "3"),
        ("{{ 'a b&c'|url_encode }}", "a%20b%26c"),
        ("{{ {'a': 1}|json_encode }}", "{\"a\":1}"),
        ("{{ {'a': 1, 'b': 2}|keys|join(',') }}", "a,b"),
        ("{{ '<p> x </p>  <b>'|spaceless|raw }}", "<p> x </p><b>"),
        ("{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 2 }}", "1 0.3 2"),
        ("{% if contact.nickname is empty %}vide{% endif %}", "vide"),
        ("{{ '<b>' }}", "<b>"),
        (
            "{{ contact.firstname|title }} {{ contact.lastname|lower|capitalize }}",
            "Jane Doe",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(ok(text), *expected, "{text:?}");
    }
}

#[test]
fn twig_spellings_are_rewritten() {
    assert_eq!(
        ok("{% apply upper %}salut {{ contact.firstname }}{% endapply %}"),
        "SALUT JANE"
    );
    let text = "{% if contact.gender == 'male' %}M{% elseif contact.gender == 'female' %}F{% else %}?{% endif %}";
    assert_eq!(ok(text), "F");
}
