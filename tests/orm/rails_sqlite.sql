CREATE TABLE "teams" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "title" varchar NOT NULL, "active" boolean DEFAULT 1 NOT NULL, "score" integer, "ratio" float, "created_at" datetime(6) NOT NULL, "updated_at" datetime(6) NOT NULL);
CREATE UNIQUE INDEX "index_teams_on_title_active" ON "teams" ("title") WHERE active;
