<?php
// Run operations on a WordPress site through its PHP API: `php wp.php DOCROOT < ops.json`,
// ops.json a JSON list of {"op": ...} objects (see ops.php); prints the JSON list of results.
// `php wp.php DOCROOT install < site.json` installs the site first (wp_install and settings).
$docroot = $argv[1];
// WP_HOME and WP_SITEURL (wp-config.php) give the site's address; these only keep notices quiet.
$_SERVER['HTTP_HOST'] = 'localhost';
$_SERVER['REQUEST_URI'] = '/';
$installing = ($argv[2] ?? '') === 'install';
if ($installing) {
    define('WP_INSTALLING', true);
}
require $docroot . '/wp-load.php';
require_once __DIR__ . '/ops.php';
$input = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);

if ($installing) {
    require_once ABSPATH . 'wp-admin/includes/upgrade.php';
    $site = $input;
    $done = wp_install($site['title'], 'admin', 'admin@example.org', false, '', wp_slash($site['admin_password']), $site['locale']);
    update_option('timezone_string', $site['timezone']);
    update_option('gmt_offset', '');
    update_option('WPLANG', $site['locale'] === 'en_US' ? '' : $site['locale']);
    update_option('blogdescription', $site['description']);
    update_option('posts_per_page', 10);
    // The byline of every post the tests publish.
    wp_insert_user(['user_login' => 'reporter', 'user_pass' => wp_generate_password(24), 'role' => 'author',
                    'display_name' => $site['author'], 'user_email' => 'reporter@example.org']);
    // Post links like the publisher's: /news/slug/ for briefs, /mexico-organized-crime-news/slug/ for profiles.
    update_option('permalink_structure', '/%category%/%postname%/');
    // The installer's sample post and page would be news of their own.
    wp_delete_post(1, true);
    wp_delete_post(2, true);
    wp_delete_post(3, true);
    flush_rewrite_rules(true);
    $input = [];
}

// Posts are written as the publisher's editors write them: as a user who may post any HTML
// (unfiltered_html), so what the tests put in a post is what the REST API serves.
wp_set_current_user(get_user_by('login', 'admin')->ID);
$out = [];
foreach ($input as $op) {
    $out[] = nl_run($op);
}
echo json_encode($out);
