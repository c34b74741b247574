<?php
// What the tests do to a site, through WordPress's own PHP API: one function per operation, each
// taking a decoded JSON object and returning something JSON can carry. Used by wp.php (called
// from Python) and by the mu-plugin (operations run while a collector is paging).

function nl_term_ids(array $names, string $taxonomy): array {
    $ids = [];
    foreach ($names as $name) {
        $found = term_exists($name, $taxonomy);
        if (!$found) {
            $found = wp_insert_term($name, $taxonomy);
            if (is_wp_error($found)) {
                throw new RuntimeException("term $name: " . $found->get_error_message());
            }
        }
        $ids[] = (int) (is_array($found) ? $found['term_id'] : $found);
    }
    return $ids;
}

function nl_gmt(?string $gmt): array {
    // A post's date in the site's zone and in UTC, the pair wp_insert_post stores.
    $gmt = $gmt ?? gmdate('Y-m-d H:i:s');
    $gmt = str_replace('T', ' ', substr($gmt, 0, 19));
    return [get_date_from_gmt($gmt), $gmt];
}

function nl_postarr(array $op): array {
    $post = [];
    foreach (['title' => 'post_title', 'content' => 'post_content', 'excerpt' => 'post_excerpt',
              'status' => 'post_status', 'password' => 'post_password', 'slug' => 'post_name'] as $key => $field) {
        if (array_key_exists($key, $op)) {
            $post[$field] = $op[$key];
        }
    }
    if (isset($op['date_gmt'])) {
        [$post['post_date'], $post['post_date_gmt']] = nl_gmt($op['date_gmt']);
        $post['edit_date'] = true;
    }
    if (isset($op['categories'])) {
        $post['post_category'] = nl_term_ids($op['categories'], 'category');
    }
    if (isset($op['tags'])) {
        $post['tags_input'] = nl_term_ids($op['tags'], 'post_tag');
    }
    return $post;
}

function nl_set_modified(int $id, ?string $gmt): void {
    // What a bulk edit or an import leaves behind: many posts with one modified time.
    if ($gmt === null) {
        return;
    }
    global $wpdb;
    [$local, $utc] = nl_gmt($gmt);
    $wpdb->update($wpdb->posts, ['post_modified' => $local, 'post_modified_gmt' => $utc], ['ID' => $id]);
    clean_post_cache($id);
}

function nl_result(int $id): array {
    $post = get_post($id);
    return ['id' => $id, 'link' => get_permalink($id), 'status' => $post->post_status,
            'modified_gmt' => $post->post_modified_gmt];
}

function nl_insert(array $op): array {
    $reporter = get_user_by('login', 'reporter');
    $post = nl_postarr($op) + ['post_status' => 'publish', 'post_author' => $reporter ? $reporter->ID : 1,
                               'post_type' => 'post'];
    $id = wp_insert_post($post, true);
    if (is_wp_error($id)) {
        throw new RuntimeException('insert: ' . $id->get_error_message());
    }
    nl_set_modified($id, $op['modified_gmt'] ?? null);
    return nl_result($id);
}

function nl_update(array $op): array {
    $post = nl_postarr($op);
    $post['ID'] = (int) $op['id'];
    $id = wp_update_post($post, true);
    if (is_wp_error($id)) {
        throw new RuntimeException('update: ' . $id->get_error_message());
    }
    nl_set_modified($id, $op['modified_gmt'] ?? null);
    return nl_result($id);
}

function nl_bulk(array $op): array {
    // n posts published in one go: the same date, hence the same modified time (wp_insert_post
    // copies a new post's date into post_modified), unless step_seconds spreads them out.
    wp_defer_term_counting(true);
    $out = [];
    for ($i = 1; $i <= (int) $op['n']; $i++) {
        $one = $op;
        if (isset($op['step_seconds'])) {
            // Published one after the other instead: each post step_seconds after the previous one.
            $one['date_gmt'] = gmdate('Y-m-d H:i:s', strtotime($op['date_gmt'] . ' UTC') + $i * (int) $op['step_seconds']);
        }
        foreach (['title', 'content', 'slug'] as $key) {
            if (isset($op[$key])) {
                $one[$key] = str_replace('{i}', (string) $i, $op[$key]);
            }
        }
        $out[] = nl_insert($one)['id'];
    }
    wp_defer_term_counting(false);
    return $out;
}

function nl_cron_publish(int $id): array {
    // A scheduled post's time comes (its date moved to now, as the clock would) and WP-Cron runs
    // its job: the status becomes publish, post_modified stays when the post was scheduled.
    global $wpdb;
    [$local, $utc] = nl_gmt(null);
    $wpdb->update($wpdb->posts, ['post_date' => $local, 'post_date_gmt' => $utc], ['ID' => $id]);
    clean_post_cache($id);
    check_and_publish_future_post($id);
    return nl_result($id);
}

function nl_reset(array $op): bool {
    // Every post gone, terms and users kept, test switches off: a site as installed.
    global $wpdb;
    foreach ([$wpdb->posts, $wpdb->postmeta, $wpdb->term_relationships, $wpdb->comments, $wpdb->commentmeta] as $table) {
        $wpdb->query("TRUNCATE TABLE $table");
    }
    $wpdb->query("UPDATE $wpdb->term_taxonomy SET count = 0");
    foreach (['nl_answer', 'nl_require_login', 'nl_on_request'] as $name) {
        delete_option($name);
    }
    wp_cache_flush();
    return true;
}

function nl_run(array $op) {
    switch ($op['op']) {
        case 'insert': return nl_insert($op);
        case 'bulk': return nl_bulk($op);
        case 'update': return nl_update($op);
        case 'trash': return (bool) wp_trash_post((int) $op['id']);
        case 'cron_publish': return nl_cron_publish((int) $op['id']);
        case 'delete': return (bool) wp_delete_post((int) $op['id'], true);
        case 'terms': return nl_term_ids($op['names'], $op['taxonomy']);
        case 'option':
            return $op['value'] === null ? delete_option($op['name']) : update_option($op['name'], $op['value']);
        case 'app_password':
            $user = get_user_by('login', $op['user']);
            [$password] = WP_Application_Passwords::create_new_application_password($user->ID, ['name' => $op['name']]);
            return $password;
        case 'reset': return nl_reset($op);
        case 'get':
            $post = get_post((int) $op['id']);
            return $post ? nl_result($post->ID) : null;
    }
    throw new RuntimeException('unknown operation ' . $op['op']);
}
