<?php
/*
 * Plugin Name: newsletter test switches
 * Description: What a publisher's site does to a collector that WordPress alone would not: each
 * switch is an option the tests set through wp.php.
 *   nl_require_login  the REST API answers 401 to anonymous requests (as "disable REST API" plugins do)
 *   nl_answer         "html": /wp-json/ answers a 200 HTML page; "fatal": a broken plugin, a PHP fatal error (500)
 *   nl_on_request     {"request": N, "ops": [...]}: when a collector makes its Nth request for
 *                     /wp/v2/posts, run the operations first (a publisher editing while the
 *                     collector pages, whatever the collector's paging parameters), once
 */

function nl_is_rest_path(): bool {
    return strpos($_SERVER['REQUEST_URI'] ?? '', '/wp-json/') === 0;
}

if (nl_is_rest_path() && get_option('nl_answer') === 'fatal') {
    nl_this_function_does_not_exist();
}

add_action('parse_request', function () {
    if (nl_is_rest_path() && get_option('nl_answer') === 'html') {
        status_header(200);
        header('Content-Type: text/html; charset=UTF-8');
        echo "<!DOCTYPE html>\n<html><head><title>" . esc_html(get_bloginfo('name')) . "</title></head>"
            . "<body><h1>Welcome</h1><p>Our site is here.</p></body></html>\n";
        exit;
    }
}, 0);

add_filter('rest_authentication_errors', function ($result) {
    if (!empty($result) || !get_option('nl_require_login') || is_user_logged_in()) {
        return $result;
    }
    return new WP_Error('rest_not_logged_in', 'You are not currently logged in.', ['status' => 401]);
});

add_filter('rest_pre_dispatch', function ($result, $server, $request) {
    $hook = get_option('nl_on_request');
    if ($hook && $request->get_route() === '/wp/v2/posts') {
        $hook['seen'] = ($hook['seen'] ?? 0) + 1;
        if ($hook['seen'] < (int) $hook['request']) {
            update_option('nl_on_request', $hook);
            return $result;
        }
        delete_option('nl_on_request');
        require_once __DIR__ . '/ops.php';
        foreach ($hook['ops'] as $op) {
            nl_run($op);
        }
    }
    return $result;
}, 10, 3);
