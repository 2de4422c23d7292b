-- Roles of the access-matrix suite, run by tests/governance/postgres.sh as the superuser on a
-- fresh cluster. Passwords come from the environment (random per run, set by the test).
--   fraud_owner                      the dbt owner role: owns database main, builds everything
--   data-engineers, data-scientists, ml-engineers
--                                    NOLOGIN group roles, the grantees of dbt_project.yml +grants
--   de_user, ds_user, mle_user       one login user in each group, used to probe the matrix
\getenv owner_password FRAUD_PG_PASSWORD
\getenv de_password FRAUD_PG_DE_PASSWORD
\getenv ds_password FRAUD_PG_DS_PASSWORD
\getenv mle_password FRAUD_PG_MLE_PASSWORD

create role fraud_owner login password :'owner_password';
create role "data-engineers" nologin;
create role "data-scientists" nologin;
create role "ml-engineers" nologin;
create role de_user login password :'de_password' in role "data-engineers";
create role ds_user login password :'ds_password' in role "data-scientists";
create role mle_user login password :'mle_password' in role "ml-engineers";

create database main owner fraud_owner encoding 'UTF8' template template0;
