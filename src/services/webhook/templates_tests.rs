//! Tests of template rendering: field paths, value formatting, trim markers and comments, and errors.

use super::*;
use crate::services::webhook::test_support::context;

#[test]
fn renders_nested_paths_and_values() {
    let ctx = context();
    assert_eq!(render("p={{.data.project}}, r={{ .data.evaluation.result }}", &ctx).unwrap(), "p=sockshop, r=pass");
    assert_eq!(render("{{.data.evaluation.score}}", &ctx).unwrap(), "92.5");
    assert_eq!(render("{{.data.evaluation.count}}", &ctx).unwrap(), "3");
    assert_eq!(render("{{.data.evaluation.big}}", &ctx).unwrap(), "1000000");
    assert_eq!(render("{{.data.evaluation.tiny}}", &ctx).unwrap(), "1e-05");
    assert_eq!(render("{{.data.evaluation.ok}}", &ctx).unwrap(), "true");
    assert_eq!(render("[{{.data.evaluation.none}}]", &ctx).unwrap(), "[]");
    assert_eq!(render("{{.data.evaluation.labels}}", &ctx).unwrap(), r#"{"a":"b"}"#);
    assert_eq!(render("{{.data.evaluation.list}}", &ctx).unwrap(), r#"[1,"x"]"#);
    assert_eq!(render("no actions } }} here", &ctx).unwrap(), "no actions } }} here");
    assert_eq!(render("", &ctx).unwrap(), "");
}

#[test]
fn formats_floats_like_go() {
    assert_eq!(go_float(92.5), "92.5");
    assert_eq!(go_float(100.0), "100");
    assert_eq!(go_float(-0.25), "-0.25");
    assert_eq!(go_float(0.0001), "0.0001");
    assert_eq!(go_float(0.000012), "1.2e-05");
    assert_eq!(go_float(1e21), "1e+21");
    assert_eq!(go_float(1.5e300), "1.5e+300");
    assert_eq!(go_float(0.0), "0");
}

#[test]
fn does_not_render_values_twice() {
    assert_eq!(render("x={{.data.injected}}", &context()).unwrap(), "x={{.env.token}}");
}

#[test]
fn honours_trim_markers_and_comments() {
    let ctx = context();
    assert_eq!(render("a  \n {{- .data.project -}} \n\t b", &ctx).unwrap(), "asockshopb");
    assert_eq!(render("a  {{- .data.project}}  b", &ctx).unwrap(), "asockshop  b");
    assert_eq!(render("a  {{.data.project -}}  b", &ctx).unwrap(), "a  sockshopb");
    assert_eq!(render("a {{/* note {{ }} */}}b", &ctx).unwrap(), "a b");
    assert_eq!(render("a {{- /* note */ -}} b", &ctx).unwrap(), "ab");
    assert_eq!(render("a {{/* never closed", &ctx).unwrap_err(), TemplateError::UnclosedComment { line: 1 });
    // Without the whitespace, `-` is not a trim marker, and Go would read a number.
    assert!(matches!(render("{{-3}}", &ctx), Err(TemplateError::Unsupported { .. })));
}

#[test]
fn missing_keys_are_errors() {
    let ctx = context();
    let err = render("x {{.data.nope}}", &ctx).unwrap_err();
    assert_eq!(err, TemplateError::MissingKey { key: "nope".into(), path: ".data.nope".into() });
    assert_eq!(err.to_string(), r#"template: map has no entry for key "nope" (evaluating .data.nope)"#);
    let err = render("{{.data.project.name}}", &ctx).unwrap_err();
    assert_eq!(err.to_string(), "template: can't evaluate field name in a string (evaluating .data.project.name)");
    let err = render("{{.data.evaluation.none.x}}", &ctx).unwrap_err();
    assert_eq!(
        err,
        TemplateError::NotAMap { key: "x".into(), found: "a nil value", path: ".data.evaluation.none.x".into() }
    );
}

#[test]
fn other_actions_are_unsupported() {
    let ctx = context();
    for action in [
        "{{if .data.project}}",
        "{{ range .data.evaluation.list }}",
        "{{end}}",
        "{{.data.project | printf \"%s\"}}",
        "{{printf \"%s\" .data.project}}",
        "{{$x := .data.project}}",
        "{{$x}}",
        "{{ . }}",
        "{{.data.my-key}}",
        "{{.data..project}}",
        "{{.data.project.}}",
        "{{data.project}}",
    ] {
        let err = render(&format!("a {action} b"), &ctx).unwrap_err();
        assert_eq!(err, TemplateError::Unsupported { action: action.to_string() }, "for {action}");
        assert_eq!(err.to_string(), format!("unsupported template action: {action}"));
    }
}

#[test]
fn unclosed_and_empty_actions_are_errors() {
    let ctx = context();
    assert_eq!(render("abc {{ .data.project", &ctx).unwrap_err(), TemplateError::Unclosed { line: 1 });
    assert_eq!(render("line1\nline2 {{", &ctx).unwrap_err(), TemplateError::Unclosed { line: 2 });
    assert_eq!(render("x {{ }}", &ctx).unwrap_err(), TemplateError::Empty { line: 1 });
    assert_eq!(render("x {{ }}", &ctx).unwrap_err().to_string(), "template: empty action at line 1");
}
