-- A small application database, the README's sample: users, their settings and preferences
-- (two tables the plan consolidates into one Convex table), posts, threaded comments (a
-- self-reference), an enum, money in numeric, jsonb and arrays.
--   psql "$DATABASE_URL" -f examples/sample-app.sql      (drops and recreates these tables)
set client_min_messages = warning;
drop table if exists comments, posts, user_preferences, user_settings, users cascade;
drop type if exists post_status;

create type post_status as enum ('draft', 'published', 'archived');

create table users (
  id bigserial primary key,
  email text not null unique,
  display_name text,
  created_at timestamptz not null default '2024-01-01T00:00:00Z',
  balance numeric(12,2) not null default 0
);

create table user_settings (
  user_id bigint primary key references users(id) on delete cascade,
  theme text not null default 'light',
  email_notifications boolean not null default true
);

create table user_preferences (
  user_id bigint primary key references users(id) on delete cascade,
  language text not null default 'en',
  timezone text not null default 'UTC'
);

create table posts (
  id uuid primary key,
  author_id bigint not null references users(id),
  title text not null,
  body text,
  status post_status not null default 'draft',
  tags text[] not null default '{}',
  metadata jsonb,
  published_at timestamptz
);

create table comments (
  id bigserial primary key,
  post_id uuid not null references posts(id) on delete cascade,
  author_id bigint not null references users(id),
  parent_id bigint references comments(id),
  body text not null,
  created_at timestamptz not null default '2024-01-01T00:00:00Z'
);

insert into users (email, display_name, created_at, balance)
select 'user' || g || '@example.com',
       case when g % 10 = 0 then null else 'User ' || g end,
       timestamptz '2024-01-01T00:00:00Z' + (g || ' hours')::interval,
       (g * 137 % 100000) / 100.0
from generate_series(1, 200) g;

insert into user_settings (user_id, theme, email_notifications)
select id, case when id % 3 = 0 then 'dark' else 'light' end, id % 4 <> 0 from users;

insert into user_preferences (user_id, language, timezone)
select id, case when id % 5 = 0 then 'de' else 'en' end, 'Europe/Berlin' from users where id % 2 = 0;

insert into posts (id, author_id, title, body, status, tags, metadata, published_at)
select ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid,
       1 + g % 200,
       'Post number ' || g,
       'Body of post ' || g || E'\nwith a second line',
       (array['draft', 'published', 'archived'])[1 + g % 3]::post_status,
       array['tag' || g % 4, 'tag' || g % 7],
       jsonb_build_object('words', 100 + g, 'featured', g % 11 = 0),
       case when g % 3 = 1 then timestamptz '2024-02-01T12:00:00Z' + (g || ' minutes')::interval end
from generate_series(1, 500) g;

insert into comments (post_id, author_id, parent_id, body, created_at)
select ('00000000-0000-4000-8000-' || lpad((1 + g % 500)::text, 12, '0'))::uuid,
       1 + g * 7 % 200,
       null,
       'Comment ' || g,
       timestamptz '2024-03-01T00:00:00Z' + (g || ' minutes')::interval
from generate_series(1, 1000) g;

-- Replies: threaded under earlier comments of the same post.
insert into comments (post_id, author_id, parent_id, body, created_at)
select c.post_id, 1 + c.id * 13 % 200, c.id, 'Reply to comment ' || c.id,
       c.created_at + interval '5 minutes'
from comments c where c.id % 4 = 0;

analyze;
