//! Tests of reading `slo.yaml`: a full file, lighthouse's defaults, scalars, and refused documents.

use super::*;

fn slo(yaml: &str) -> Slo {
    parse(yaml).expect("test SLO parses")
}

#[test]
fn parse_full_file() {
    let parsed = slo(r#"
spec_version: "1.0"
unknown_top_level: ignored
filter:
  zeta: "1"
  alpha: two
  id: 42
comparison:
  compare_with: several_results
  include_result_with_score: Pass_Or_Warn
  number_of_comparison_results: 5
  aggregate_function: p90
objectives:
  - sli: response_time_p95
    displayName: Response Time P95
    key_sli: true
    weight: 2
    pass:
      - criteria: ["<=+10%", "<600"]
      - criteria: ["<800"]
    warning:
      - criteria: ["<=800"]
    whatever: 1
  - null
  - sli: throughput
total_score:
  pass: "90%"
  warning: 75%
"#);
    assert_eq!(
        parsed.filter,
        vec![
            ("zeta".to_string(), "1".to_string()),
            ("alpha".to_string(), "two".to_string()),
            ("id".to_string(), "42".to_string())
        ]
    );
    assert_eq!(
        parsed.comparison,
        Comparison {
            compare_with: "several_results".into(),
            include_result_with_score: "Pass_Or_Warn".into(),
            number_of_comparison_results: 5,
            aggregate_function: "p90".into(),
        }
    );
    assert_eq!(parsed.objectives.len(), 2, "null objective dropped");
    assert_eq!(
        parsed.objectives[0],
        Objective {
            sli: "response_time_p95".into(),
            display_name: "Response Time P95".into(),
            pass: vec![vec!["<=+10%".into(), "<600".into()], vec!["<800".into()]],
            warning: vec![vec!["<=800".into()]],
            weight: 2,
            key_sli: true,
        }
    );
    assert_eq!(
        parsed.objectives[1],
        Objective {
            sli: "throughput".into(),
            display_name: String::new(),
            pass: vec![],
            warning: vec![],
            weight: 1,
            key_sli: false,
        }
    );
    assert_eq!(parsed.total_score, Some(TotalScore { pass: "90%".into(), warning: Some("75%".into()) }));
    assert_eq!(parsed.comparison_count(), 5);
    assert_eq!(parsed.comparison_result_filter(), Some("pass,warning"));
    assert_eq!(parsed.indicators(), vec!["response_time_p95".to_string(), "throughput".to_string()]);
}

#[test]
fn parse_defaults_when_comparison_absent_or_null() {
    for yaml in ["objectives: []", "comparison:\nobjectives: []", "comparison: null"] {
        let parsed = slo(yaml);
        assert_eq!(
            parsed.comparison,
            Comparison {
                compare_with: "single_result".into(),
                include_result_with_score: "all".into(),
                number_of_comparison_results: 1,
                aggregate_function: "avg".into(),
            },
            "{yaml}"
        );
        assert_eq!(parsed.comparison_count(), 1);
        assert_eq!(parsed.comparison_result_filter(), None);
    }
}

#[test]
fn parse_defaults_when_comparison_present_but_empty() {
    let parsed = slo("comparison:\n  compare_with: \"\"\n  number_of_comparison_results: 0\n");
    assert_eq!(
        parsed.comparison,
        Comparison {
            compare_with: String::new(),
            include_result_with_score: "all".into(),
            number_of_comparison_results: 3,
            aggregate_function: "avg".into(),
        }
    );
    // compare_with is not defaulted, and anything but the two known values means 3.
    assert_eq!(parsed.comparison_count(), 3);
}

#[test]
fn comparison_count_and_filter_table() {
    let cases = [
        ("single_result", 7, "all", 1, None),
        ("several_results", 7, "pass", 7, Some("pass")),
        ("several_results", 0, "PASS", 3, Some("pass")),
        ("Several_Results", 7, "pass_or_warn", 3, Some("pass,warning")),
        ("other", 7, "ALL", 3, None),
        ("several_results", 2, "something", 2, None),
    ];
    for (compare_with, count, include, want_count, want_filter) in cases {
        let parsed = slo(&format!(
                "comparison:\n  compare_with: {compare_with}\n  number_of_comparison_results: {count}\n  include_result_with_score: {include}\n"
            ));
        assert_eq!(parsed.comparison_count(), want_count, "{compare_with}/{count}");
        assert_eq!(parsed.comparison_result_filter(), want_filter, "{include}");
    }
}

#[test]
fn parse_weights_and_scalars() {
    let parsed = slo(r#"
objectives:
  - sli: a
    weight: 0
  - sli: b
  - sli: c
    weight: 5
    key_sli: yes
  - sli: d
    weight: null
    key_sli: false
    pass:
      - null
      - criteria: [<1, 5]
total_score:
  pass: 90
  warning: ""
"#);
    let weights: Vec<u32> = parsed.objectives.iter().map(|o| o.weight).collect();
    assert_eq!(weights, vec![1, 1, 5, 1]);
    assert!(parsed.objectives[2].key_sli);
    assert!(!parsed.objectives[3].key_sli);
    assert_eq!(parsed.objectives[3].pass, vec![vec![], vec!["<1".to_string(), "5".to_string()]]);
    assert_eq!(parsed.total_score, Some(TotalScore { pass: "90".into(), warning: None }));
}

#[test]
fn parse_empty_and_invalid_documents() {
    let empty = slo("");
    assert!(empty.objectives.is_empty());
    assert_eq!(empty.total_score, None);
    assert_eq!(empty.comparison, Comparison::default());

    assert!(matches!(parse("- just\n- a list\n"), Err(SloParseError::Yaml(_))));
    assert!(matches!(parse("objectives: [\n"), Err(SloParseError::Yaml(_))));
    assert!(matches!(parse("objectives:\n  - sli: a\n    weight: many\n"), Err(SloParseError::Yaml(_))));
    assert_eq!(
        parse("objectives:\n  - sli: a\n    weight: -2\n"),
        Err(SloParseError::NegativeWeight { sli: "a".into(), weight: -2 })
    );
    assert_eq!(
        parse("comparison:\n  number_of_comparison_results: -1\n"),
        Err(SloParseError::NegativeComparisonCount(-1))
    );
    assert_eq!(
        parse("objectives:\n  - sli: a\n    weight: -2\n").unwrap_err().to_string(),
        "invalid SLO file: objective 'a' has negative weight -2"
    );
}
