/*
 * options.h - ccrunner's configuration: command line over environment, per SPEC.md.
 *
 * Every option has an environment variable (Jobs are configured through env); a flag wins
 * over its variable; aliases are accepted. Parsing never exits: a bad value or a missing
 * prerequisite yields CC_OPT_USAGE and one line in `err` that names the cause and the fix,
 * which main() prints before anything runs (exit code 2).
 */
#ifndef CC_OPTIONS_H
#define CC_OPTIONS_H

#include <stddef.h>

#define CC_MAX_ADD_DIRS 32
#define CC_PROMPT_MAX (64u << 20) /* the largest prompt file read */
#define CC_PROMPT_MAX_TEXT "64 MiB"

enum cc_output { CC_OUTPUT_JSONL = 0, CC_OUTPUT_TEXT = 1 };

enum cc_opt_result {
    CC_OPT_OK = 0,
    CC_OPT_HELP = 1,    /* --help: print usage, exit 0 */
    CC_OPT_VERSION = 2, /* --version */
    CC_OPT_USAGE = -1,  /* bad input: err says why; exit 2 */
};

/* Strings point into argv or the environment (borrowed for the process's life) or are
 * static defaults; a prompt read from a file is allocated once and kept for the process's
 * life. Nothing here is freed. */
struct cc_options {
    const char *prompt;      /* first prompt; required in batch mode */
    const char *prompt_file; /* where the prompt was read from ("-": stdin), or NULL */
    int interactive;
    const char *model;     /* NULL: Claude Code's default */
    const char *workspace; /* default "." */
    const char *add_dirs[CC_MAX_ADD_DIRS];
    int n_add_dirs;
    const char *session_id;      /* NULL: generate one */
    double timeout_s;            /* 0: none */
    double idle_timeout_s;       /* interactive: end after this long without input (3600) */
    int max_turns;               /* 0: Claude Code's default */
    const char *permission_mode; /* default "acceptEdits" */
    const char *system_prompt;   /* appended to Claude Code's own */
    const char *claude_path;     /* NULL: the project-installed one, then PATH */
    enum cc_output output;

    /* credentials and context, from the environment only */
    const char *anthropic_api_key;
    const char *anthropic_base_url;
    int use_vertex;
    const char *vertex_project;
    const char *vertex_location; /* default "us-east5" */
    const char *google_credentials;
    const char *namespace_name;
    const char *project_name;
    const char *user_id;
    const char *user_name;
    const char *websocket_url;
    const char *bot_token;
    const char *termination_log; /* TERMINATION_LOG; NULL: /dev/termination-log if writable */
};

/*
 * Fills `o` from argv and the environment, reading the prompt file if one is given
 * (--prompt-file / INITIAL_PROMPT_FILE; "-" is stdin, batch mode only). Returns CC_OPT_OK,
 * CC_OPT_HELP, CC_OPT_VERSION, or CC_OPT_USAGE with one line (no newline) in err.
 */
int cc_options_parse(struct cc_options *o, int argc, char **argv, char *err, size_t errlen);

/* Checks what must hold before anything runs: a prompt in batch mode, credentials, the
 * workspace and extra directories exist. CC_OPT_OK or CC_OPT_USAGE with err. */
int cc_options_check(const struct cc_options *o, char *err, size_t errlen);

/* The usage text (for --help). */
const char *cc_options_usage(void);

#endif
