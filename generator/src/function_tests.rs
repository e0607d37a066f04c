//! Tests of custom functions in the generated tree: their modules, routes, tests and refusals.

use domain::Limits;
use domain::generation::Target;
use domain::project::{
    CreateFunction, CreateProject, FeatureType, FunctionExample, GenerationMode, NewFeature,
    NewFunction, Project, ProjectCommand,
};
use domain::testing::{feature_id, function_id, project_id, t0, user_id};
use serde_json::{Value, json};

use super::*;

/// The project folded from a `CreateProject` with `features`, then one `CreateFunction` per
/// function, through the domain's own rules.
fn project_with(features: Vec<NewFeature>, functions: Vec<NewFunction>) -> Project {
    let mut project = Project::default();
    let mut commands = vec![ProjectCommand::CreateProject(CreateProject {
        project_id: project_id(1),
        owner_id: user_id(1),
        name: "Shop".into(),
        description: None,
        generation_mode: None,
        features,
        at: t0(),
    })];
    commands.extend(
        functions
            .into_iter()
            .map(|function| ProjectCommand::CreateFunction(CreateFunction { function, at: t0() })),
    );
    for command in &commands {
        let events = project
            .decide(command, &Limits::default())
            .unwrap_or_else(|e| panic!("the fixture project is invalid: {e:?}"));
        for event in &events {
            project.evolve(event);
        }
    }
    project
}

fn items() -> NewFeature {
    NewFeature::new(feature_id(1), "Items", FeatureType::Crud).with_schema(json!({
        "entity": "item",
        "fields": [{"name": "title", "type": "string", "required": true, "max_length": 80}]
    }))
}

const TOTAL_CODE: &str = "def handler(input):\n    return {\"total\": sum(line[\"qty\"] * line[\"price\"] for line in input[\"lines\"]), \"currency\": input.get(\"currency\", \"EUR\")}\n";

/// `total`, with schemas and two examples.
fn total() -> NewFunction {
    NewFunction {
        description: Some("Sums *lines* | <b>".into()),
        input_schema: Some(json!({
            "type": "object",
            "required": ["lines"],
            "properties": {"lines": {"type": "array"}, "currency": {"type": "string"}}
        })),
        output_schema: Some(json!({"type": "object", "required": ["total"]})),
        examples: vec![
            FunctionExample {
                input: json!({"lines": [{"qty": 2, "price": 3}]}),
                output: json!({"total": 6, "currency": "EUR"}),
            },
            FunctionExample {
                input: json!({"lines": [], "currency": "a \"quoted\" ü"}),
                output: json!({"total": 0, "currency": "a \"quoted\" ü"}),
            },
        ],
        ..NewFunction::new(function_id(1), "total", TOTAL_CODE)
    }
}

/// `ping`, on PUT at its own path, no schemas and no examples.
fn ping() -> NewFunction {
    NewFunction {
        endpoint_path: Some("/tools/ping".into()),
        http_method: Some("PUT".into()),
        ..NewFunction::new(
            function_id(2),
            "ping",
            "def handler(input):\n    return input\n",
        )
    }
}

fn text(artifact: &Artifact, name: &str) -> String {
    let bytes = artifact
        .files
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not generated"));
    String::from_utf8(bytes.clone()).unwrap()
}

#[test]
fn each_active_function_gets_its_module_its_route_and_a_test_per_example() {
    // given: two active functions and an inactive one
    let inactive = NewFunction {
        is_active: false,
        ..NewFunction::new(
            function_id(3),
            "dormant",
            "def handler(input):\n    return 1\n",
        )
    };
    let project = project_with(vec![items()], vec![total(), ping(), inactive]);

    // when
    let artifact = generate(&project, 3, Target::PythonFastapi).unwrap();

    // then: the code is the user's, byte for byte (not reflowed although a line is long)
    assert_eq!(text(&artifact, "app/functions/total.py"), TOTAL_CODE);
    assert!(artifact.files.contains_key("app/functions/ping.py"));
    assert!(artifact.files.contains_key("app/functions/__init__.py"));
    assert!(
        !artifact.files.keys().any(|k| k.contains("dormant")),
        "an inactive function generates nothing"
    );
    let routes = text(&artifact, "app/function_routes.py");
    assert!(!routes.contains("dormant"));
    assert!(routes.contains("from app.functions import total as _fn_total\n"));
    assert!(routes.contains("@ROUTER.post(\n"), "{routes}");
    assert!(routes.contains("\"/fn/total\""));
    assert!(routes.contains("@ROUTER.put(") && routes.contains("\"/tools/ping\""));
    assert!(routes.contains("operation_id=\"call_ping\""));
    assert!(routes.contains("async def call_total(request: Request) -> Response:"));
    let main = text(&artifact, "app/main.py");
    assert!(main.contains("from app.function_routes import ROUTER as _FUNCTIONS_ROUTER\n"));
    assert!(main.contains("    app.include_router(_FUNCTIONS_ROUTER)\n"));

    // the schemas and examples travel as JSON, exactly as stored
    let schemas: Value =
        serde_json::from_str(&text(&artifact, "app/function_schemas.json")).unwrap();
    let function = project.functions.first().unwrap();
    assert_eq!(
        schemas["total"]["input_schema"],
        function.input_schema.clone().unwrap()
    );
    assert_eq!(
        schemas["ping"],
        json!({"input_schema": null, "output_schema": null})
    );
    let examples: Value =
        serde_json::from_str(&text(&artifact, "tests/function_examples.json")).unwrap();
    assert_eq!(
        examples,
        json!({"total": [
            {"input": {"lines": [{"qty": 2, "price": 3}]}, "output": {"total": 6, "currency": "EUR"}},
            {"input": {"lines": [], "currency": "a \"quoted\" ü"}, "output": {"total": 0, "currency": "a \"quoted\" ü"}}
        ]})
    );

    // one test per example, and one 422 test for the schema with a `type`
    let tests = text(&artifact, "tests/test_functions.py");
    for test in [
        "def test_total_example_1(client: TestClient) -> None:",
        "def test_total_example_2(client: TestClient) -> None:",
        "def test_total_refuses_input_that_breaks_its_schema(client: TestClient) -> None:",
    ] {
        assert!(tests.contains(test), "{test} missing:\n{tests}");
    }
    assert!(
        tests.contains("_assert_example(client, \"POST\", \"/fn/total\", _EXAMPLES[\"total\"][1])")
    );
    assert!(tests.contains("json=[]"), "an array breaks `type: object`");
    assert!(
        !tests.contains("test_ping"),
        "ping has no example and no schema"
    );

    // the OpenAPI test expects the routes; ruff and mypy leave the users' code alone
    assert!(text(&artifact, "tests/data.py").contains("\"/tools/ping\""));
    assert!(text(&artifact, "ruff.toml").contains("extend-exclude = [\"app/functions\"]"));
    let mypy = text(&artifact, "mypy.ini");
    assert!(mypy.contains("[mypy-app.functions.*]\nfollow_imports = skip\n"));
    assert_eq!(mypy.matches("exclude = ").count(), 1, "{mypy}");
    assert!(text(&artifact, "requirements.txt").contains("\njsonschema==4.26.0 \\\n"));

    // the README lists the endpoints, the description escaped
    let readme = text(&artifact, "README.md");
    assert!(
        readme.contains("| POST | `/fn/total` | function `total` (Sums \\*lines\\* "),
        "{readme}"
    );
    assert!(readme.contains("| PUT | `/tools/ping` | function `ping`: any JSON body"));
    assert!(readme.contains("## Functions"));
}

#[test]
fn a_project_without_functions_gets_none_of_their_files() {
    // given
    let project = project_with(vec![items()], vec![]);

    // when
    let artifact = generate(&project, 1, Target::PythonFastapi).unwrap();

    // then
    assert!(
        !artifact.files.keys().any(|k| k.contains("function")),
        "{:?}",
        artifact.files.keys()
    );
    assert!(!text(&artifact, "app/main.py").contains("FUNCTIONS"));
    assert!(!text(&artifact, "ruff.toml").contains("functions"));
    let mypy = text(&artifact, "mypy.ini");
    assert!(!mypy.contains("functions") && !mypy.contains("# nofunctions"));
    assert!(mypy.contains("exclude = (^|/)(\\.venv|venv|build)/\n"));
    assert!(!text(&artifact, "README.md").contains("## Functions"));
}

#[test]
fn the_routes_of_an_app_with_auth_need_a_signed_in_caller() {
    // given
    let login = NewFeature::new(feature_id(2), "Login", FeatureType::Auth);
    let project = project_with(vec![items(), login], vec![total()]);

    // when
    let artifact = generate(&project, 1, Target::PythonFastapi).unwrap();

    // then
    let routes = text(&artifact, "app/function_routes.py");
    assert!(
        routes.contains("_actor: Actor = Depends(require_actor)"),
        "{routes}"
    );
    assert!(routes.contains("errors.responses(400, 401, 422, 500)"));
    let tests = text(&artifact, "tests/test_functions.py");
    assert!(tests.contains("def test_functions_need_a_signed_in_caller(anonymous: TestClient)"));
}

#[test]
fn an_ai_assisted_function_without_applied_ai_content_is_refused_naming_it() {
    // given
    let assisted = NewFunction {
        generation_mode: Some(GenerationMode::AiAssisted),
        ..total()
    };
    let mut project = project_with(vec![items()], vec![assisted, ping()]);

    // when
    let refused = generate(&project, 1, Target::PythonFastapi).unwrap_err();

    // then
    let GenerateError::Refused(problems) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("function `total`")
            && problems[0].contains("ai_assisted")
            && problems[0].contains("apply an AI request first"),
        "{problems:?}"
    );

    // and once an AI request's code was applied to it, it generates
    project.functions[0].ai_request_id = Some(domain::ids::AiRequestId::from_uuid(
        uuid::Uuid::from_u128(0xa1),
    ));
    generate(&project, 1, Target::PythonFastapi).unwrap();
}

#[test]
fn a_mixed_function_generates() {
    let mixed = NewFunction {
        generation_mode: Some(GenerationMode::Mixed),
        ..total()
    };
    generate(
        &project_with(vec![items()], vec![mixed]),
        1,
        Target::PythonFastapi,
    )
    .unwrap();
}

#[test]
fn an_inactive_function_with_an_ai_generation_mode_does_not_stop_generation() {
    // given
    let assisted = NewFunction {
        generation_mode: Some(GenerationMode::AiAssisted),
        is_active: false,
        ..total()
    };
    let project = project_with(vec![items()], vec![assisted]);

    // when / then
    generate(&project, 1, Target::PythonFastapi).unwrap();
}

#[test]
fn generating_a_project_with_functions_twice_gives_the_same_bytes() {
    // given
    let project = project_with(vec![items()], vec![total(), ping()]);

    // when
    let first = generate(&project, 2, Target::PythonFastapi).unwrap();
    let second = generate(&project, 2, Target::PythonFastapi).unwrap();

    // then
    assert_eq!(first.zip, second.zip);
}

#[test]
fn hostile_descriptions_and_examples_reach_the_readme_and_the_tests_only_escaped() {
    // given: a description that tries to end the README row and open HTML, and examples whose
    // strings hold triple quotes, a NUL, line breaks and a bidi control
    let hostile = "x\"\"\" + __import__('os').system('id') + \"\"\"\n\0\r\u{202e}";
    let function = NewFunction {
        description: Some("a\n| GET | `/evil` | <script>x</script>\n# title".into()),
        examples: vec![FunctionExample {
            input: json!({"lines": [], "currency": hostile}),
            output: json!({"total": 0, "currency": hostile}),
        }],
        ..total()
    };
    let project = project_with(vec![items()], vec![function]);

    // when
    let artifact = generate(&project, 1, Target::PythonFastapi).unwrap();

    // then: the row stays one line with the description's markup escaped
    let readme = text(&artifact, "README.md");
    let row = readme
        .lines()
        .find(|line| line.starts_with("| POST | `/fn/total` |"))
        .expect("the function's row");
    assert!(
        row.contains("(a \\| GET \\| \\`/evil\\` \\| &lt;script&gt;x&lt;/script&gt; \\# title)"),
        "{row}"
    );
    assert!(!readme.contains("<script>") && !readme.contains("\n| GET | `/evil`"));
    // the examples travel as JSON only: decoded they are the strings given, and no Python module
    // holds any of them
    let examples: Value =
        serde_json::from_str(&text(&artifact, "tests/function_examples.json")).expect("JSON");
    assert_eq!(examples["total"][0]["input"]["currency"], hostile);
    assert_eq!(examples["total"][0]["output"]["currency"], hostile);
    for name in ["tests/test_functions.py", "app/function_routes.py"] {
        let module = text(&artifact, name);
        assert!(!module.contains("__import__"), "{name}:\n{module}");
        assert!(
            !module.contains('\0') && !module.contains('\u{202e}'),
            "{name}"
        );
    }
}

#[test]
#[ignore]
fn write_an_artifact_with_functions_for_inspection() {
    let dir = std::env::var("DUMP_DIR").unwrap();
    let auth = std::env::var("DUMP_AUTH").is_ok();
    let mut features = vec![match std::env::var("DUMP_NOTES") {
        Ok(_) => NewFeature::new(feature_id(1), "Notes", FeatureType::Crud).with_schema(json!({
            "entity": "note",
            "fields": [{"name": "body", "type": "text", "required": true}]
        })),
        Err(_) => items(),
    }];
    if auth {
        features.push(NewFeature::new(feature_id(2), "Login", FeatureType::Auth));
    }
    let artifact = generate(
        &project_with(features, vec![total(), ping()]),
        1,
        Target::PythonFastapi,
    )
    .unwrap();
    for (name, content) in read_zip(&artifact.zip).unwrap() {
        let path = std::path::Path::new(&dir).join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}
