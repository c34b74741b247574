<?php
// Router for PHP's built-in web server: what Apache's mod_rewrite does for WordPress's pretty
// permalinks. Existing files are served as they are; every other path (/wp-json/..., /news/slug/)
// goes to index.php, which reads REQUEST_URI.
$root = $_SERVER['DOCUMENT_ROOT'];
$path = urldecode(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?? '/');
if ($path !== '/' && is_file($root . $path)) {
    return false;
}
$_SERVER['SCRIPT_NAME'] = '/index.php';
$_SERVER['SCRIPT_FILENAME'] = $root . '/index.php';
$_SERVER['PHP_SELF'] = '/index.php';
require $root . '/index.php';
