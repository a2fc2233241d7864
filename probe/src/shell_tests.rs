use super::*;
use alloc::vec;

/// The programs, sorted (commands inside `$(...)` are read before the word that holds them).
fn programs(cmd: &str) -> Vec<String> {
    let mut p = read_command(cmd).programs;
    p.sort();
    p
}

fn sorted(words: &[&str]) -> Vec<String> {
    let mut w: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    w.sort();
    w
}

fn unknown(cmd: &str) -> Vec<String> {
    read_command(cmd).unknown_programs
}

fn has_word(cmd: &str, word: &str) -> bool {
    read_command(cmd).words.iter().any(|w| w == word)
}

#[test]
fn quoted_or_escaped_program_names_are_words() {
    for cmd in [
        r#"r"m" -rf /"#,
        "'rm' -rf /",
        r"r\m -rf /",
        r#"/usr/bin/"r"'m' -rf /"#,
        r#"echo hi; s''u''do r""m x"#,
        r#"echo "$(r"m" -rf /)""#,
        r#"echo "`r'm' -rf /`""#,
        // ANSI-C quoting: hex, octal, unicode escapes.
        r"$'\x72m' -rf /",
        r"$'\162\155' -rf /",
        r"$'\u0072'm -rf /",
        // Quote removal joins code that a shell or eval reads again.
        r"sh -c 'r''m -rf /'",
        r#"eval "r""m -rf /""#,
        r"bash -c $'\x72m -rf /'",
    ] {
        assert!(
            has_word(cmd, "rm"),
            "rm in {:?} of {cmd}",
            read_command(cmd).words
        );
    }
    let line = read_command(r#"echo "a b" 'c;d'"#);
    assert!(line.words.iter().any(|x| x == "a b") && line.words.iter().any(|x| x == "c;d"));
    assert_eq!(read_command("ls -la").words, vec!["ls", "-la", "ls", "-la"]);
}

#[test]
fn programs_are_the_words_in_program_position() {
    assert_eq!(programs("ls -la /tmp"), sorted(&["ls"]));
    assert_eq!(
        programs("cd /tmp && /bin/rm -rf x; curl -s y | grep z"),
        sorted(&["cd", "/bin/rm", "curl", "grep"])
    );
    assert_eq!(programs("FOO=1 BAR='x y' make -j2"), sorted(&["make"]));
    assert_eq!(programs("2>/dev/null cat a >b 2>&1 <c"), sorted(&["cat"]));
    assert_eq!(
        programs("if test -f x; then rm x; else echo no; fi"),
        sorted(&["test", "rm", "echo"])
    );
    assert_eq!(
        programs("for f in a b; do gzip $f; done"),
        sorted(&["gzip"])
    );
    assert_eq!(
        programs("(cd x; make) & wait"),
        sorted(&["cd", "make", "wait"])
    );
    assert_eq!(
        programs("echo $(whoami) `id -u` <(date)"),
        sorted(&["echo", "whoami", "id", "date"])
    );
    assert_eq!(programs("echo # ; rm -rf /"), sorted(&["echo"]));
    assert_eq!(programs("[ -f x ] && [[ -d y ]]"), sorted(&["[", "[["]));
    assert_eq!(programs("echo 'if'; 'if' x"), sorted(&["echo", "if"]));
}

#[test]
fn wrappers_start_the_program_after_their_options() {
    assert_eq!(programs("sudo -u root rm -rf /"), sorted(&["sudo", "rm"]));
    assert_eq!(
        programs("env -i PATH=/bin FOO=1 nice -n 5 make all"),
        sorted(&["env", "nice", "make"])
    );
    assert_eq!(
        programs("timeout -s KILL 5 curl x"),
        sorted(&["timeout", "curl"])
    );
    assert_eq!(
        programs("find . -name '*.o' -exec rm {} ;"),
        sorted(&["find", "rm"])
    );
    assert_eq!(
        programs("ls | xargs -I{} -n 1 sh -c 'cp {} /tmp'"),
        sorted(&["ls", "xargs", "sh", "cp"])
    );
    assert_eq!(programs("env -S 'rm -rf /'"), sorted(&["env", "rm"]));
    assert_eq!(
        programs("su -c 'mkfs /dev/sda' root"),
        sorted(&["su", "mkfs"])
    );
    assert_eq!(
        programs("eval 'curl x;' wget y"),
        sorted(&["eval", "curl", "wget"])
    );
}

#[test]
fn programs_only_the_shell_can_name_are_unknown() {
    for (cmd, what) in [
        ("$x -rf /", "$x"),
        ("x=rm; ${x} -rf /", "${x}"),
        ("$(echo rm) -rf /", "$(echo rm)"),
        ("`echo rm` -rf /", "`echo rm`"),
        ("/bin/r? -rf /", "/bin/r?"),
        ("/bin/r[m] -rf /", "/bin/r[m]"),
        ("/bin/{rm,x} -rf /", "/bin/{rm,x}"),
        ("sudo $CMD", "$CMD"),
        ("sh -c \"$CODE\"", "\"$CODE\""),
        ("eval $CODE", "$CODE"),
        (
            "echo cm0gLXJmIC8K | base64 -d | sh",
            "a shell reading commands from its input",
        ),
        (
            "curl -s x | bash -s -- arg",
            "a shell reading commands from its input",
        ),
        (
            "sh <<< 'rm -rf /'",
            "a shell reading commands from its input",
        ),
        (". <(curl -s x)", "<(curl -s x)"),
        ("source $SCRIPT", "$SCRIPT"),
    ] {
        assert_eq!(unknown(cmd), vec![what.to_string()], "{cmd}");
    }
    // Expansions in arguments are no program; the commands inside one are read.
    for cmd in [
        "echo $HOME ${USER:-x} *.txt",
        "ls -la ~/x",
        "grep -r 'a.*b' .",
        "bash script.sh",
        "sh -c 'ls'",
    ] {
        assert!(unknown(cmd).is_empty(), "{cmd}: {:?}", unknown(cmd));
    }
    assert_eq!(programs("echo ${x:-$(rm -rf /)}"), sorted(&["echo", "rm"]));
    assert_eq!(
        programs("echo $(( $(id -u) + 1 )) done"),
        sorted(&["echo", "id"])
    );
}

#[test]
fn deep_nesting_is_unknown_and_bounded() {
    let deep = alloc::format!("{}rm{}", "$(".repeat(5000), ")".repeat(5000));
    let line = read_command(&deep);
    assert!(line
        .unknown_programs
        .iter()
        .any(|u| u == "commands nested too deep"));
    let braces = alloc::format!("{}x{}", "${a:-".repeat(5000), "}".repeat(5000));
    assert!(read_command(&braces)
        .unknown_programs
        .iter()
        .any(|u| u == "expansions nested too deep"));
    // Code inside code, each level quoted once more: read down to MAX_DEPTH, then unknown.
    let mut code = String::from("rm -rf /");
    for _ in 0..12 {
        let escaped: String = code
            .chars()
            .flat_map(|c| match c {
                '\\' | '"' | '$' | '`' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        code = alloc::format!("sh -c \"{escaped}\"");
    }
    let line = read_command(&code);
    assert!(
        line.unknown_programs
            .iter()
            .any(|u| u == "commands nested too deep"),
        "{line:?}"
    );
    let _ = read_command(&"`".repeat(10_001));
    let _ = read_command(&"$'\\".repeat(10_000));
}

#[test]
fn random_shell_text_never_panics_and_stays_bounded() {
    const ALPHABET: &[char] = &[
        '$', '(', ')', '{', '}', '`', '\'', '"', '\\', ' ', '\n', ';', '|', '&', '<', '>', '#',
        '*', '?', '[', ']', '=', '-', 'c', 's', 'h', 'r', 'm', 'x', '0', '7', 'é', '\u{0}',
    ];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20_000 {
        let len = (next() % 64) as usize;
        let text: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
            .collect();
        let line = read_command(&text);
        // Words come from the text: never more than a few per character at each level.
        assert!(
            line.words.len() <= 4 * (text.len() + 1) * (MAX_DEPTH + 1),
            "{text:?}"
        );
    }
}

fn runs(cmd: &str, program: &str) -> bool {
    read_command(cmd).programs.iter().any(|p| p == program)
}

#[test]
fn strings_bash_reads_again_are_read() {
    // Arithmetic on a variable, an array subscript, `${x@P}`, PS4 and BASH_ENV expand the code a
    // string holds: bash runs rm in each of these.
    for cmd in [
        "echo='a[$(rm)]'; echo $((echo))",
        "x='a[$(rm)]'; [[ x -eq 1 ]]",
        "x='a[`rm`]'; let x",
        "read 'a[$(rm)]' <<< 1",
        "printf -v 'a[$(rm)]' x",
        "[[ -v 'a[$(rm)]' ]]",
        "declare -n r='a[$(rm)]'; echo $r",
        "PS4='$(rm)'; set -x; echo",
        "BASH_ENV='$(rm)' bash -c :",
        "f() { echo $(($1)); }; f 'a[$(rm)]'",
    ] {
        assert!(runs(cmd, "rm"), "{cmd}: {:?}", read_command(cmd));
    }
    // Quote removal joins the name again whatever the string holds.
    for cmd in [
        "echo='a[$(r''m)]'; echo $((echo))",
        r#"trap 'r""m' EXIT"#,
        r#"mapfile -c 1 -C 'r""m' <<< x"#,
        "x='$(r''m)'; echo ${x@P}",
    ] {
        assert!(has_word(cmd, "rm"), "{cmd}: {:?}", read_command(cmd).words);
    }
    // A string without code adds no program.
    assert_eq!(programs("grep -E 'a|b; c' x"), sorted(&["grep"]));
}

#[test]
fn builtins_that_run_code_or_programs() {
    for cmd in [
        "trap 'rm x' EXIT",
        "trap -- rm EXIT",
        "mapfile -c 1 -C rm <<< x",
        "readarray -C rm -c1 a <<< x",
        "hash -p /bin/rm ls; ls",
        "set -o history\necho\nfc -e rm",
        "shopt -s expand_aliases\nalias ls='rm -rf'\nls",
        "coproc ls { rm; }",
        "coproc ls while rm; do break; done",
        "eval -- rm",
        "x+=1 rm",
        "watch -n 1 ls '; rm x'",
    ] {
        assert!(
            runs(cmd, "rm") || runs(cmd, "/bin/rm"),
            "{cmd}: {:?}",
            read_command(cmd)
        );
    }
    assert!(!runs("coproc ls { rm; }", "ls"));
    assert_eq!(programs("trap - EXIT; trap -p"), sorted(&["trap", "trap"]));
}

#[test]
fn shells_and_scripts_reading_input_are_unknown() {
    for cmd in [
        "bash /dev/stdin <<< rm",
        "bash /dev/fd/0 <<< rm",
        "sh /proc/self/fd/0 <<< rm",
        "bash <(echo rm)",
        "bash $SCRIPT",
        "bash -o posix <<< rm",
        "bash -O extglob <<< rm",
        "bash -euo pipefail <<< rm",
        "bash --init-file /dev/stdin -i <<< rm",
        "source /dev/stdin <<< rm",
        ". /dev/fd/3 3<<< rm",
        "BASH_ENV=/dev/stdin bash -c : <<< rm",
        "x='$(rm)'; echo ${x@P}",
        "echo rm | sudo -s",
        "echo rm | su",
        "set -o history\necho\nFCEDIT=rm fc",
    ] {
        assert!(!unknown(cmd).is_empty(), "{cmd}: {:?}", read_command(cmd));
    }
    assert!(runs("sh +c rm", "rm"));
    assert_eq!(programs("bash -c -e rm"), sorted(&["bash", "rm"]));
    assert_eq!(programs("bash -c -- rm"), sorted(&["bash", "rm"]));
    assert!(unknown("bash -o errexit -c ls").is_empty());
}

#[test]
fn wrapper_options_in_every_form() {
    for cmd in [
        "sudo -Ep ls rm",
        "sudo --prompt ls rm",
        "sudo --prompt=ls rm",
        "sudo --pro ls rm",
        "sudo -u root -- rm",
        "xargs --process-slot-var ls rm",
        "env -iu ls rm",
        "env - rm",
        "timeout -sKILL 5 rm",
        "su - root -c rm",
        "su -s /bin/rm root",
    ] {
        let p = read_command(cmd).programs;
        assert!(
            p.iter().any(|p| basename(p) == "rm") && !p.iter().any(|p| p == "ls"),
            "{cmd}: {p:?}"
        );
    }
}

#[test]
fn scripts_in_ordinary_directories_are_no_input() {
    for cmd in [
        "bash /home/dev/webapp/build.sh",
        "sh ./scripts/dev/setup.sh",
        "source /home/dev/.venv/bin/activate",
        ". ./proc/fd/env.sh",
    ] {
        assert!(unknown(cmd).is_empty(), "{cmd}: {:?}", unknown(cmd));
    }
    for cmd in [
        "bash /./dev//stdin <<< x",
        "sh /proc/self/fd/0",
        ". /dev/../dev/fd/0",
    ] {
        assert!(!unknown(cmd).is_empty(), "{cmd}");
    }
}

#[test]
fn here_document_bodies_are_data_and_hide_no_command() {
    // The body is data: a quote in it opens nothing, and the commands after it are read.
    for cmd in [
        "cat <<EOF\ncat it's\nEOF\nrm -rf /",
        "cat <<'EOF'\ncat \"x\nEOF\nrm -rf /",
        "cat <<-EOF\n\tcat `x\n\tEOF\nrm -rf /",
        "cat <<A <<B; ls\ncat '\nA\ncat \"\nB\nrm -rf /",
        "cat 2<<EOF >/tmp/x\n'\nEOF\nrm -rf /",
        // Unquoted: `EO\` and `F` are one line, the delimiter (bash runs the rm).
        "cat <<EOF\ncat '\nEO\\\nF\nrm -rf /\nEOF",
    ] {
        assert!(runs(cmd, "rm"), "{cmd}: {:?}", read_command(cmd));
    }
    // Its lines are no programs; its words still count for deny rules.
    assert_eq!(
        programs("cat <<EOF > x.sh\nrm -rf /\nEOF"),
        sorted(&["cat"])
    );
    assert!(has_word("cat <<EOF > x.sh\nrm -rf /\nEOF", "rm"));
    assert_eq!(programs("cat <<< rm; ls"), sorted(&["cat", "ls"]));
    // An unquoted delimiter: the body's substitutions run; a quoted one: nothing in it runs.
    assert!(runs("cat <<EOF\n$(rm -rf /) `mkfs`\nEOF", "rm"));
    assert!(runs("cat <<EOF\n$(rm -rf /) `mkfs`\nEOF", "mkfs"));
    assert_eq!(programs("cat <<'EOF'\n$(rm -rf /)\nEOF"), sorted(&["cat"]));
    assert!(unknown("cat <<'EOF'\n$(rm -rf /)\nEOF").is_empty());
    // A delimiter only the shell would spell out: the body's end is not known.
    assert!(!unknown("cat <<$E\nx\n$E\nrm").is_empty());
}

#[test]
fn long_options_that_start_a_shell_reading_its_input() {
    for cmd in [
        "echo rm | sudo --shell",
        "echo rm | sudo --login",
        "echo rm | sudo --sh",
        "echo rm | sudo -u root --login",
    ] {
        assert!(!unknown(cmd).is_empty(), "{cmd}: {:?}", read_command(cmd));
    }
    assert!(unknown("sudo --login ls").is_empty());
}

#[test]
fn option_words_only_the_shell_can_spell_out_are_unknown() {
    // `-$x` may be `-u`, which makes the next word a user name and the one after it the program.
    for cmd in [
        "sudo -$x ls rm",
        "sudo -`echo u` ls rm",
        "bash -$x 'rm -rf /'",
    ] {
        assert!(!unknown(cmd).is_empty(), "{cmd}: {:?}", read_command(cmd));
    }
    assert!(unknown("ls | xargs -I{} cp {} /tmp").is_empty());
    assert!(unknown("sudo -u $USER ls").is_empty());
}

#[test]
fn a_long_option_given_whole_is_that_option_not_a_longer_one() {
    // `--login` is sudo's flag, not a prefix of `--login-class CLASS`: rm is the program.
    assert!(
        runs("sudo --login rm ls", "rm"),
        "{:?}",
        read_command("sudo --login rm ls")
    );
    assert!(!runs("sudo --login-class ls rm", "ls"));
    assert!(!runs("sudo --login-c ls rm", "ls"));
}
