;;; test_eglot.el --- the REAL `qcoder lsp' driven by Emacs eglot in batch mode -*- lexical-binding: t -*-

;; The flow of tests/lsp/nvim/test_fix.lua in eglot 1.9 (Debian 12): eglot starts `qcoder
;; lsp' (which starts the daemon, scripted model); the code action "qcoder: fix" is asked
;; for and its command executed (workspace/executeCommand); the agent reads the unsaved
;; buffer through the lsp and its edit comes back as workspace/applyEdit, which eglot
;; applies to the buffer (not the file); shutdown ends the server with status 0.
;; Run by tests/lsp/run_editor.sh: emacs --batch -Q -l test_eglot.el.

;; -Q skips Debian's site-start, which would put the elpa packages on the load path.
(dolist (d (file-expand-wildcards "/usr/share/emacs/site-lisp/elpa/*"))
  (add-to-list 'load-path d))
(require 'eglot)
(require 'cl-lib)
(require 'json)

(defvar qt-count 0)
(defvar qt-failed 0)

(defun qt-ok (cond name &optional detail)
  "Record one check as a TAP line."
  (setq qt-count (1+ qt-count))
  (if cond
      (princ (format "ok %d - %s\n" qt-count name))
    (setq qt-failed (1+ qt-failed))
    (princ (format "not ok %d - %s\n" qt-count name))
    (when detail (princ (format "#   %S\n" detail))))
  cond)

(defun qt-wait (secs pred)
  "Wait up to SECS for PRED, letting processes run."
  (let ((end (+ (float-time) secs)))
    (while (and (not (funcall pred)) (< (float-time) end))
      (accept-process-output nil 0.05))
    (funcall pred)))

(defun qt-file (path)
  (with-temp-buffer (insert-file-contents path) (buffer-string)))

(defun qt-prompts ()
  "The scripted model's prompt log: a list of (raw . prompt)."
  (let ((log (getenv "QCODER_SCRIPT_PROMPT_LOG")) (out nil))
    (when (file-exists-p log)
      (dolist (line (split-string (qt-file log) "\n" t))
        (let ((o (json-parse-string line :object-type 'alist)))
          (push (cons (alist-get 'raw o) (alist-get 'prompt o)) out))))
    (nreverse out)))

(defun qt-call (name params)
  (concat "<tool_call>\n<function=" name ">\n"
          (mapconcat (lambda (kv) (format "<parameter=%s>\n%s\n</parameter>\n" (car kv) (cdr kv))) params "")
          "</function>\n</tool_call>"))

(condition-case err
    (let* ((tmp (file-name-as-directory (getenv "QCODER_LSP_TEST_DIR")))
           (bin (getenv "QCODER_BIN"))
           (dir (file-name-as-directory (expand-file-name "proj" tmp)))
           (main (expand-file-name "src/main.c" dir))
           (script (expand-file-name "script.json" tmp))
           (on-disk "int main(void) {\n  return 0\n}\n"))
      (make-directory (expand-file-name "src" dir) t)
      (with-temp-file (expand-file-name "AGENTS.md" dir) (insert "A tiny C project.\n"))
      (with-temp-file main (insert on-disk))
      (with-temp-file script
        (insert (json-encode
                 (vector (qt-call "read_file" '(("path" . "src/main.c")))
                         (qt-call "edit_file" '(("path" . "src/main.c") ("old_string" . "  return 0")
                                                ("new_string" . "  return 0;")))
                         "Added the missing semicolon."))))
      (setq eglot-confirm-server-initiated-edits nil)
      (find-file main)
      (c-mode)
      ;; an unsaved change the agent must see
      (goto-char (point-min))
      (insert "// unsaved\n")
      (eglot '(c-mode) (cons 'transient dir) 'eglot-lsp-server
             (list bin "lsp" "--model" (concat "script:" script) "--mode" "auto-edit") "c")
      (qt-ok (qt-wait 15 (lambda () (eglot-current-server))) "eglot connects to qcoder lsp")
      (let* ((server (eglot-current-server))
             (caps (eglot--capabilities server)))
        (qt-ok (plist-get caps :executeCommandProvider) "the server offers executeCommand")
        (qt-ok (equal (plist-get (plist-get caps :textDocumentSync) :change) 1) "full document sync")
        (eglot--signal-textDocument/didChange)
        (let* ((actions (jsonrpc-request
                         server :textDocument/codeAction
                         (list :textDocument (eglot--TextDocumentIdentifier)
                               :range (list :start (list :line 2 :character 0) :end (list :line 2 :character 10))
                               :context (list :diagnostics
                                              (vector (list :range (list :start (list :line 2 :character 10)
                                                                         :end (list :line 2 :character 10))
                                                            :severity 1 :message "expected ';'"))))))
               (titles (mapcar (lambda (a) (plist-get a :title)) actions))
               (fix (cl-find "qcoder: fix" actions :key (lambda (a) (plist-get a :title)) :test #'equal)))
          (qt-ok (and fix (member "qcoder: explain" titles)) "the server offers qcoder: fix and explain" titles)
          (let* ((cmd (plist-get fix :command))
                 (result (eglot-execute-command server (intern (plist-get cmd :command))
                                                (plist-get cmd :arguments))))
            (qt-ok (equal (plist-get result :stopReason) "end_turn") "qcoder.fix ends its turn" result)
            (qt-ok (equal (plist-get result :summary) "Added the missing semicolon.") "the summary comes back"
                   result)))
        (qt-ok (equal (buffer-substring-no-properties (point-min) (point-max))
                      "// unsaved\nint main(void) {\n  return 0;\n}\n")
               "the agent's edit changed the buffer (only the broken line)"
               (buffer-string))
        (qt-ok (equal (qt-file main) on-disk) "the file on disk is untouched")
        (let ((p (qt-prompts)))
          (qt-ok (and (= (length p) 3) (string-match-p (regexp-quote "expected ';'") (cdr (nth 0 p))))
                 "the agent was asked to fix the diagnostic")
          ;; line 1 of read_file's numbered output (not the quote in the user prompt)
          (qt-ok (string-match-p "1\t// unsaved" (cdr (nth 1 p))) "the agent read the unsaved buffer"))
        ;; shutdown + exit by hand: `eglot-shutdown' kills the process right after `exit'
        ;; (jsonrpc-shutdown deletes it), so it could not show the server's own status
        (let ((proc (jsonrpc--process server)))
          (setf (eglot--shutdown-requested server) t)
          (qt-ok (null (jsonrpc-request server :shutdown nil)) "shutdown is answered")
          (jsonrpc-notify server :exit nil)
          (qt-ok (qt-wait 10 (lambda () (not (process-live-p proc)))) "qcoder lsp exits after exit")
          (qt-ok (eq (process-exit-status proc) 0) "with status 0" (process-exit-status proc)))))
  (error (qt-ok nil "the test raised an error" err)))

(princ (format "1..%d\n" qt-count))
(kill-emacs (if (or (> qt-failed 0) (= qt-count 0)) 1 0))

;;; test_eglot.el ends here
