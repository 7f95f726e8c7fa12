#!/bin/sh
# Placeholder until the tokenizer cross-check lands: skipped.
exit 77
