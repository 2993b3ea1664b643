//! Lowering a parsed row condition into a polars expression.
//!
//! The condition was parsed by [`super::condition`]; nothing of it is ever evaluated as code.
//! Each AST node maps onto one polars expression.

use super::condition::{BinOp, Expr as Ast, Func, Literal};
use polars::prelude::*;

/// The polars expression of a parsed condition.
pub fn to_polars(ast: &Ast) -> Expr {
    match ast {
        Ast::Column { name, .. } => col(name.as_str()),
        Ast::Literal { value, .. } => literal(value),
        Ast::Binary {
            op, left, right, ..
        } => {
            let (l, r) = (to_polars(left), to_polars(right));
            match op {
                BinOp::Eq => l.eq(r),
                BinOp::NotEq => l.neq(r),
                BinOp::Lt => l.lt(r),
                BinOp::LtEq => l.lt_eq(r),
                BinOp::Gt => l.gt(r),
                BinOp::GtEq => l.gt_eq(r),
                BinOp::And => l.and(r),
                BinOp::Or => l.or(r),
                BinOp::Add => l + r,
                BinOp::Sub => l - r,
                BinOp::Mul => l * r,
                BinOp::Div => l / r,
                BinOp::Mod => l % r,
            }
        }
        Ast::Not { expr, .. } => to_polars(expr).not(),
        Ast::Neg { expr, .. } => lit(0) - to_polars(expr),
        Ast::InList {
            expr,
            list,
            negated,
            ..
        } => {
            let e = to_polars(expr);
            let set = in_list(list);
            let is_in = e.is_in(set, false);
            if *negated {
                is_in.not()
            } else {
                is_in
            }
        }
        Ast::IsNull { expr, negated, .. } => {
            let e = to_polars(expr);
            if *negated {
                e.is_not_null()
            } else {
                e.is_null()
            }
        }
        Ast::Between {
            expr,
            low,
            high,
            negated,
            ..
        } => {
            let e = to_polars(expr);
            let inside = e
                .clone()
                .gt_eq(to_polars(low))
                .and(e.lt_eq(to_polars(high)));
            if *negated {
                inside.not()
            } else {
                inside
            }
        }
        Ast::Like {
            expr,
            pattern,
            negated,
            ..
        } => {
            let m = to_polars(expr)
                .cast(DataType::String)
                .str()
                .contains(lit(like_to_regex(pattern)), true);
            if *negated {
                m.not()
            } else {
                m
            }
        }
        Ast::Call { func, args, .. } => {
            let mut lowered: Vec<Expr> = args.iter().map(to_polars).collect();
            let first = if lowered.is_empty() {
                lit(Null {})
            } else {
                lowered.remove(0)
            };
            match func {
                Func::Abs => first.abs(),
                Func::Length => first.cast(DataType::String).str().len_chars(),
                Func::Lower => first.cast(DataType::String).str().to_lowercase(),
                Func::Upper => first.cast(DataType::String).str().to_uppercase(),
                Func::Coalesce => {
                    let mut all = vec![first];
                    all.extend(lowered);
                    coalesce(&all)
                }
            }
        }
    }
}

fn literal(value: &Literal) -> Expr {
    match value {
        Literal::Int(i) => lit(*i),
        Literal::Float(f) => lit(*f),
        Literal::Str(s) => lit(s.clone()),
        Literal::Bool(b) => lit(*b),
        Literal::Null => lit(Null {}),
    }
}

/// An IN list as one polars series literal. Numbers compare as f64 (vigil reads numeric columns
/// as f64); a list of text stays text.
fn in_list(list: &[Literal]) -> Expr {
    let all_numeric = list
        .iter()
        .all(|l| matches!(l, Literal::Int(_) | Literal::Float(_) | Literal::Null));
    let s = if all_numeric {
        let v: Vec<Option<f64>> = list
            .iter()
            .map(|l| match l {
                Literal::Int(i) => Some(*i as f64),
                Literal::Float(f) => Some(*f),
                _ => None,
            })
            .collect();
        Series::new("list".into(), v)
    } else {
        let v: Vec<Option<String>> = list
            .iter()
            .map(|l| match l {
                Literal::Int(i) => Some(i.to_string()),
                Literal::Float(f) => Some(f.to_string()),
                Literal::Str(s) => Some(s.clone()),
                Literal::Bool(b) => Some(b.to_string()),
                Literal::Null => None,
            })
            .collect();
        Series::new("list".into(), v)
    };
    lit(s).implode(true)
}

/// SQL LIKE (`%` any run, `_` one character) as an anchored regex.
pub fn like_to_regex(pattern: &str) -> String {
    let mut out = String::from("^");
    for ch in pattern.chars() {
        match ch {
            '%' => out.push_str("(?s:.*)"),
            '_' => out.push_str("(?s:.)"),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_becomes_anchored_regex() {
        assert_eq!(like_to_regex("a%b_"), "^a(?s:.*)b(?s:.)$");
        assert_eq!(like_to_regex("1.5"), "^1\\.5$");
    }
}
