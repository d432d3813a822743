-- delete_token_hash: the SHA-256 (hex) of the token DeleteImage asks for,
-- given to the uploader once. Photos uploaded before it have '' and can no
-- longer be deleted through the API.
-- decode_error: why a render found the photo cannot be decoded, so later
-- requests are answered from this record instead of decoding it again.
-- Constant defaults: adding the columns does not rewrite the table.
ALTER TABLE images
	ADD COLUMN delete_token_hash text NOT NULL DEFAULT '',
	ADD COLUMN decode_error text NOT NULL DEFAULT '';
