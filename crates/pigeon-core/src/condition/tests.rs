use super::*;
use serde_json::json;

fn jane() -> (Json, Json) {
    (
        json!({"lastname":"Doe","firstname":"Jane","birthdate":"1992-08-15","gender":"female","vip":"0"}),
        json!({"id": 1, "name": "Jane Doe", "number": "+33612345678",
               "created_at": "2024-01-10 10:00:00", "updated_at": "2024-01-10 10:00:00"}),
    )
}

fn john() -> (Json, Json) {
    (
        json!({"lastname":"Doe","firstname":"John","birthdate":"1990-10-22","gender":"male","vip":"1"}),
        json!({"id": 2, "name": "John Doe", "number": "+33612345679",
               "created_at": "2024-02-10 10:00:00", "updated_at": "2024-02-10 10:00:00"}),
    )
}

fn today() -> Date {
    Date::new(2025, 8, 15).unwrap_or_default()
}

fn eval(src: &str) -> Result<Json> {
    let (contact, metas) = jane();
    Condition::parse(src)?.evaluate_at(&contact, &metas, today())
}

fn parse_err(src: &str) -> String {
    match Condition::parse(src) {
        Ok(c) => panic!("{src:?} should not parse, got {c:?}"),
        Err(ConditionError::Invalid(msg)) => msg,
    }
}

#[test]
fn match_table() {
    let (jane_c, jane_m) = jane();
    let (john_c, john_m) = john();
    let empty = json!([]);
    // (expression, contact data, metas, expected match)
    let cases: &[(&str, &Json, &Json, bool)] = &[
        (
            "contact.gender == 'female' && contact.vip == 1",
            &jane_c,
            &jane_m,
            false,
        ),
        (
            "contact.gender == 'female' && contact.vip == 1",
            &john_c,
            &john_m,
            false,
        ),
        (
            "contact.gender == 'male' && contact.vip == 1",
            &john_c,
            &john_m,
            true,
        ),
        (
            "contact.gender == 'female' and contact.vip == 0",
            &jane_c,
            &jane_m,
            true,
        ),
        (
            "(exists(contact.lastname)) && (upper(contact.lastname) == 'DOE')",
            &jane_c,
            &jane_m,
            true,
        ),
        (
            "(exists(contact.lastname)) && (upper(contact.lastname) == 'DOE')",
            &john_c,
            &john_m,
            true,
        ),
        (
            "(exists(contact.surname)) && (upper(contact.surname) == 'DOE')",
            &john_c,
            &john_m,
            false,
        ),
        ("contact_metas.name matches '/^Jo/'", &john_c, &john_m, true),
        (
            "contact_metas.name matches '/^Jo/'",
            &jane_c,
            &jane_m,
            false,
        ),
        (
            "contact_metas.name matches '/^jo/i'",
            &john_c,
            &john_m,
            true,
        ),
        (
            "contact_metas.name matches '#doe$#i'",
            &jane_c,
            &jane_m,
            true,
        ),
        ("contact.vip in ['1', '2']", &john_c, &john_m, true),
        ("contact.vip in ['1', '2']", &jane_c, &jane_m, false),
        ("contact.vip in [1, 2]", &john_c, &john_m, true),
        ("contact.vip not in ['1', '2']", &jane_c, &jane_m, true),
        ("not (contact.gender == 'male')", &jane_c, &jane_m, true),
        ("not (contact.gender == 'male')", &john_c, &john_m, false),
        ("!(contact.gender == 'male')", &jane_c, &jane_m, true),
        (
            "is_birthday(date(contact.birthdate))",
            &jane_c,
            &jane_m,
            true,
        ),
        (
            "is_birthday(date(contact.birthdate))",
            &john_c,
            &john_m,
            false,
        ),
        (
            "lower(contact_metas.name) ~ '!' == 'jane doe!'",
            &jane_c,
            &jane_m,
            true,
        ),
        (
            "lower(contact_metas.name) ~ '!' == 'jane doe!'",
            &john_c,
            &john_m,
            false,
        ),
        ("contact.vip == true", &john_c, &john_m, true),
        ("contact.vip == true", &jane_c, &jane_m, false),
        ("contact.vip", &jane_c, &jane_m, false),
        ("contact.vip", &john_c, &john_m, true),
        ("contact.missing == 'x'", &jane_c, &jane_m, false),
        ("contact.missing != 'x'", &jane_c, &jane_m, false),
        ("not exists(contact.missing)", &jane_c, &jane_m, true),
        ("contact.gender == 'female'", &empty, &jane_m, false),
        ("contact.gender != 'female'", &empty, &jane_m, false),
        ("contact_metas.id + 1 == 3", &john_c, &john_m, true),
        ("contact_metas.id * 10 - 5 > 10", &john_c, &john_m, true),
        (
            "contact_metas.created_at < '2024-02-01'",
            &jane_c,
            &jane_m,
            true,
        ),
        (
            "date(contact_metas.created_at) > date('2024-02-01')",
            &john_c,
            &john_m,
            true,
        ),
        ("contact.vip ?: false", &john_c, &john_m, true),
        (
            "contact.gender == 'male' ? true : false",
            &jane_c,
            &jane_m,
            false,
        ),
        ("contact.lastname.first == 'D'", &jane_c, &jane_m, false),
    ];
    for (src, contact, metas, expected) in cases {
        let cond = match Condition::parse(src) {
            Ok(c) => c,
            Err(e) => panic!("{src:?} should parse: {e}"),
        };
        assert_eq!(
            cond.matches_at(contact, metas, today()),
            *expected,
            "{src:?} with {contact}"
        );
    }
}

#[test]
fn numbers_and_loose_comparison() {
    let (contact, metas) = (
        json!({"age": "42", "score": "7.5", "code": "007"}),
        json!({}),
    );
    let cases: &[(&str, bool)] = &[
        ("contact.age > 30", true),
        ("contact.age > 100", false),
        ("contact.age >= '42'", true),
        ("contact.age < '5'", false), // numeric, not lexical
        ("contact.age == 42", true),
        ("contact.age === 42", false),
        ("contact.age === '42'", true),
        ("contact.code == 7", true),
        ("contact.code == '7'", true),
        ("contact.code == '7.0'", true),
        ("contact.score * 2 == 15", true),
        ("'1' == 1", true),
        ("'01' == '1'", true),
        ("'1.0' == 1", true),
        ("'1e3' == '1000'", true),
        ("'abc' == 0", false),
        ("null == 0", true),
        ("null == false", true),
        ("'' == null", true),
        ("'' == 0", false),
        ("'0' == false", true),
        ("'a' < 'b'", true),
        ("'10' < '9'", false),
        ("'abc' < 5", false),
        ("[1, 2] == [1, 2]", true),
        ("[1, 2] === [1, '2']", false),
        ("1 === 1.0", false),
        ("1 == 1.0", true),
        ("2 ** 3 ** 2 == 512", true),
        ("-2 ** 2 == 4", true),
        ("7 % 3 == 1", true),
        ("7 / 2 == 3.5", true),
        ("6 / 2 === 3", true),
        ("1 + 2 * 3 == 7", true),
        ("(1 + 2) * 3 == 9", true),
        ("1 ~ 2 + 3 == '15'", true),
        ("3 in 1..5", true),
        ("'c' in 'a'..'e'", true),
        ("count(5..1) == 5", true),
        ("abs(-3) == 3", true),
        ("intval('12abc') === 12", true),
        ("intval('0x1A', 16) === 26", true),
        ("boolval('0') === false", true),
        ("strlen('héhé') == 4", true),
        ("substr('Bonjour', -4) == 'jour'", true),
        ("substr('Bonjour', 0, 3) == 'Bon'", true),
        ("substr('Bonjour', 1, -1) == 'onjou'", true),
        ("count([1, [2, 3]], 1) == 4", true),
        ("constant('PHP_VERSION') === null", true),
        ("{a: 1, 'b': 2}.b == 2", true),
        ("[10, 20][1] == 20", true),
        ("contact['age'] == 42", true),
        ("true ? 'x' : 'y'", true),
        ("false ? 'x'", false),
        ("1.5e3 == 1500", true),
        ("\"a\\tb\" == 'a\tb'", true),
        ("TRUE and not FALSE", true),
        ("(5 | 2) == 7", true),
        ("1 or 1/0", true),
        ("0 and 1/0", false),
    ];
    for (src, expected) in cases {
        let cond = match Condition::parse(src) {
            Ok(c) => c,
            Err(e) => panic!("{src:?} should parse: {e}"),
        };
        let got = cond.evaluate_at(&contact, &metas, today());
        assert_eq!(
            cond.matches_at(&contact, &metas, today()),
            *expected,
            "{src:?} evaluated to {got:?}"
        );
    }
}

#[test]
fn evaluation_results() {
    assert_eq!(eval("1 + 2"), Ok(json!(3)));
    assert_eq!(eval("7 / 2"), Ok(json!(3.5)));
    assert_eq!(
        eval("9223372036854775807 + 1"),
        Ok(json!(9.223372036854776e18))
    );
    assert_eq!(eval("'a' ~ 1.0 ~ (0.1 + 0.2)"), Ok(json!("a10.3")));
    assert_eq!(eval("1..3"), Ok(json!([1, 2, 3])));
    assert_eq!(eval("upper(contact.firstname)"), Ok(json!("JANE")));
    assert_eq!(eval("contact_metas.name matches '/Doe/'"), Ok(json!(1)));
    assert_eq!(
        eval("date('2024-03-05 07:08:09')"),
        Ok(json!("2024-03-05 07:08:09"))
    );
    assert_eq!(eval("date('today')"), Ok(json!("2025-08-15 00:00:00")));
    assert_eq!(
        eval("date('today -18 years')"),
        Ok(json!("2007-08-15 00:00:00"))
    );
    assert_eq!(
        eval("date('2024-01-31 +1 day')"),
        Ok(json!("2024-02-01 00:00:00"))
    );
    assert_eq!(eval("date('2 days ago')"), Ok(json!("2025-08-13 00:00:00")));
    assert_eq!(eval("date('15.08.1992')"), Ok(json!("1992-08-15 00:00:00")));
    assert_eq!(
        eval("date('08/15/1992 10:30')"),
        Ok(json!("1992-08-15 10:30:00"))
    );
    assert_eq!(eval("date('not a date')"), Ok(json!(false)));
    assert_eq!(eval("date('1992-02-30')"), Ok(json!(false)));
    assert_eq!(
        eval("date_from_format('d/m/Y', '15/08/1992').format('Y-m-d')"),
        Ok(json!("1992-08-15"))
    );
    assert_eq!(
        eval("date_from_format('!d/m/y H:i', '5/8/92 14:05')"),
        Ok(json!("1992-08-05 14:05:00"))
    );
    assert_eq!(
        eval("date_from_format('d/m/Y', '15-08-1992')"),
        Ok(json!(false))
    );
    assert_eq!(
        eval("date('2024-03-05').format('l jS F Y, D M N w z t L')"),
        Ok(json!("Tuesday 5th March 2024, Tue Mar 2 2 64 31 1"))
    );
    assert_eq!(
        eval("contact.nope"),
        Err(invalid("undefined property `nope`"))
    );
    assert!(eval("1 / 0").is_err());
    assert!(eval("'abc' + 1").is_err());
    assert!(eval("contact.firstname.x").is_err());
    assert!(eval("date('today') == 'x'").is_err());
    assert!(eval("count('abc')").is_err());
    assert!(eval("is_birthday('garbage')").is_err());
    assert!(eval("1..100000").is_err());
}

#[test]
fn birthday_uses_the_given_day() {
    let (contact, metas) = jane();
    let cond = Condition::parse("is_birthday(date(contact.birthdate))");
    let Ok(cond) = cond else {
        panic!("parse failed")
    };
    assert!(cond.matches_at(&contact, &metas, today()));
    let other = Date::new(2025, 8, 16).unwrap_or_default();
    assert!(!cond.matches_at(&contact, &metas, other));
    // The string form is accepted too.
    let Ok(cond) = Condition::parse("is_birthday(contact.birthdate)") else {
        panic!("parse failed")
    };
    assert!(cond.matches_at(&contact, &metas, today()));
}

#[test]
fn regexes() {
    let (contact, metas) = (json!({"t": "Hello\nWorld"}), json!({}));
    let cases: &[(&str, bool)] = &[
        ("contact.t matches '/^World/'", false),
        ("contact.t matches '/^World/m'", true),
        ("contact.t matches '/hello.world/is'", true),
        ("contact.t matches '{^hel}i'", true),
        ("contact.t matches '/ W o r l d /x'", true),
        // `\\/` in the condition is `\/` in the pattern (PHP string escapes).
        ("contact.t matches '/a\\\\/b/'", false),
        ("contact.t matches '/o\\\\nW/'", true),
        ("contact.t matches ('/' ~ 'World' ~ '/')", true),
        ("contact.t matches ('/(' ~ '/')", false),
    ];
    for (src, expected) in cases {
        let Ok(cond) = Condition::parse(src) else {
            panic!("{src:?} should parse")
        };
        assert_eq!(
            cond.matches_at(&contact, &metas, today()),
            *expected,
            "{src:?}"
        );
    }
    assert!(parse_err("contact.t matches '/(?=x)/'").contains("invalid regular expression"));
    assert!(parse_err("contact.t matches '/abc'").contains("no ending delimiter"));
    assert!(parse_err("contact.t matches 'abc'").contains("delimiter"));
    assert!(parse_err("contact.t matches '/a/e'").contains("unknown modifier"));
    assert!(parse_err("contact.t matches '/a\\/b/'").contains("unknown modifier `b`"));
}

#[test]
fn parse_errors() {
    assert_eq!(
        parse_err("foo == 1"),
        "unknown variable `foo` at position 0 (allowed: contact, contact_metas)"
    );
    assert!(parse_err("bar(contact.x)").starts_with("unknown function `bar` at position 0"));
    assert!(parse_err("UPPER(contact.x)").starts_with("unknown function `UPPER`"));
    assert_eq!(
        parse_err("upper()"),
        "function `upper` at position 0 expects 1 to 2 argument(s), got 0"
    );
    assert!(parse_err("exists(contact.a, contact.b)").contains("expects 1 argument(s), got 2"));
    assert_eq!(
        parse_err("(contact.x == 1"),
        "unexpected end of condition at position 15"
    );
    assert_eq!(
        parse_err("contact.x == 1)"),
        "unexpected token `)` at position 14"
    );
    assert_eq!(
        parse_err("contact.x == 1 contact"),
        "unexpected token `contact` at position 15"
    );
    assert_eq!(parse_err(""), "condition is empty");
    assert_eq!(parse_err("   "), "condition is empty");
    assert!(parse_err("contact.x == 'abc").contains("unterminated string"));
    assert!(parse_err("contact.x = 1").contains("unexpected character `=` at position 10"));
    assert!(parse_err("contact.x == @").contains("unexpected character `@`"));
    assert!(parse_err("contact.x.foo()").contains("unknown method `foo`"));
    assert!(parse_err(&"1 + ".repeat(300)).contains("too long"));
    let long = format!("contact.x == '{}'", "a".repeat(1000));
    assert!(parse_err(&long).contains("too long"));
}

#[test]
fn deep_input_is_rejected_without_overflow() {
    let deep = "(".repeat(10_000);
    assert!(Condition::parse(&deep).is_err());
    let deep = format!("{}1{}", "(".repeat(500), ")".repeat(500));
    assert!(Condition::parse(&deep).is_err());
    let negs = format!("{}1", "-".repeat(900));
    assert!(Condition::parse(&negs).is_err());
    let chain = format!("1{}", " + 1".repeat(240));
    assert!(parse_err(&chain).contains("too deeply nested"));
    let attrs = format!("contact{}", ".a".repeat(400));
    assert!(parse_err(&attrs).contains("too deeply nested"));
    // `?:` must not duplicate its condition (exponential growth).
    let elvis = format!("{}1{}", "(".repeat(90), " ?: 1)".repeat(90));
    assert!(Condition::parse(&elvis).is_ok());
    // Moderate nesting is fine.
    let ok = format!("{}1{} == 1", "(".repeat(40), ")".repeat(40));
    assert!(Condition::parse(&ok).is_ok());
}

#[test]
fn php_float_strings() {
    assert_eq!(php_float_string(1.0), "1");
    assert_eq!(php_float_string(0.1 + 0.2), "0.3");
    assert_eq!(php_float_string(-2.5), "-2.5");
    assert_eq!(php_float_string(1e15), "1.0E+15");
    assert_eq!(php_float_string(1.5e-7), "1.5E-7");
    assert_eq!(php_float_string(123456.789), "123456.789");
    assert_eq!(php_float_string(f64::INFINITY), "INF");
}
