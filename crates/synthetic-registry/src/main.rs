//! `synthetic-registry`: serves a synthetic registry on loopback until killed (or for
//! `--seconds`). Prints its URL on the first line of standard output, and its request
//! counts when it stops.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use synthetic_registry::{Flavor, Server, Shape};

const USAGE: &str = "usage: synthetic-registry [--listen 127.0.0.1:0] [--threads 2] [--seconds N]
  [--repos 100] [--tags 10] [--images 0] [--index-percent 10] [--referrer-percent 5]
  [--huge-tags 0] [--flavor distribution|zot] [--tag-pages] [--seed 1] [--now UNIX_SECONDS]
  [--span-days 365]

Repositories are project-NNNNN/service-MM (100 per project), plus project-huge/app when
--huge-tags is set; tags build-NNNNNNNN-hhhhhh and latest. --images 0: one image per tag.
GET /_synthetic/stats gives the request counts as JSON.";

fn parse(args: &[String]) -> Result<(Shape, String, usize, Option<u64>), String> {
    let mut shape = Shape::default();
    let mut listen = "127.0.0.1:0".to_string();
    let mut threads = 2usize;
    let mut seconds = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--tag-pages" {
            shape.tag_pages = true;
            continue;
        }
        if a == "-h" || a == "--help" {
            return Err(String::new());
        }
        let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
        let num = || -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("{a}: {v:?} is not a number"))
        };
        match a.as_str() {
            "--listen" => listen = v.clone(),
            "--threads" => threads = num()? as usize,
            "--seconds" => seconds = Some(num()?),
            "--repos" => shape.repositories = num()?,
            "--tags" => shape.tags = num()?,
            "--images" => shape.images = num()?,
            "--index-percent" => shape.index_percent = num()?.min(100),
            "--referrer-percent" => shape.referrer_percent = num()?.min(100),
            "--huge-tags" => shape.huge_tags = num()?,
            "--seed" => shape.seed = num()?,
            "--now" => shape.now = num()? as i64,
            "--span-days" => shape.span_days = num()?.max(1) as i64,
            "--flavor" => {
                shape.flavor = match v.as_str() {
                    "distribution" => Flavor::Distribution,
                    "zot" => Flavor::Zot,
                    _ => return Err(format!("--flavor: {v:?} is not distribution or zot")),
                }
            }
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    Ok((shape, listen, threads, seconds))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (shape, listen, threads, seconds) = match parse(&args) {
        Ok(p) => p,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let server = match Server::start(shape.clone(), &listen, threads) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: serving on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    println!("{}", server.url());
    eprintln!(
        "synthetic registry ({:?}): {} repositories x {} tags{} on {}",
        shape.flavor,
        shape.repositories,
        shape.tags,
        if shape.huge_tags > 0 {
            format!(
                " + {} tags in {}",
                shape.huge_tags,
                synthetic_registry::HUGE_REPOSITORY
            )
        } else {
            String::new()
        },
        server.url()
    );
    // Bounded: at most --seconds (default a day), then it stops by itself.
    let until = Instant::now() + Duration::from_secs(seconds.unwrap_or(86_400));
    while Instant::now() < until {
        std::thread::sleep(
            Duration::from_millis(200).min(until.saturating_duration_since(Instant::now())),
        );
    }
    eprintln!("requests: {}", server.stats().to_json());
    ExitCode::SUCCESS
}
