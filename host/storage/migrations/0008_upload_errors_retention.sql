-- 0008: refused upload rows are erased after a while (they hold the cells
-- of the file as sent: for pre-enrolments, names, phones and identity
-- numbers of people who were not enrolled). The upload and its counts stay;
-- this says when its refused rows went.
ALTER TABLE uploads ADD COLUMN errors_erased_ms INTEGER;
