//! Japanese era (和暦) names of fiscal years, as city documents write them: FY2026 is
//! 令和8年度, and the first year of an era is 元年 (FY2019 is 令和元年度).

use mieruka_aggregator::FiscalYear;

/// Eras by the Gregorian year of their first fiscal year. A fiscal year is named by the
/// era in force when it ends (FY2019, from April 2019, is 令和元年度 though 令和 began on
/// May 1, 2019; that is how the government and cities name it).
const ERAS: &[(i32, &str)] = &[(2019, "令和"), (1989, "平成")];

/// The fiscal year in the Japanese era, e.g. `令和8年度`; `None` before 平成.
pub fn era_fiscal_year(fy: FiscalYear) -> Option<String> {
    let (first, name) = ERAS.iter().find(|(first, _)| fy.0 >= *first)?;
    let n = fy.0 - first + 1;
    Some(if n == 1 {
        format!("{name}元年度")
    } else {
        format!("{name}{n}年度")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fiscal_2026_is_reiwa_8_and_2019_is_its_first_year() {
        assert_eq!(
            era_fiscal_year(FiscalYear(2026)).as_deref(),
            Some("令和8年度")
        );
        assert_eq!(
            era_fiscal_year(FiscalYear(2025)).as_deref(),
            Some("令和7年度")
        );
        assert_eq!(
            era_fiscal_year(FiscalYear(2019)).as_deref(),
            Some("令和元年度")
        );
        assert_eq!(
            era_fiscal_year(FiscalYear(2018)).as_deref(),
            Some("平成30年度")
        );
        assert_eq!(
            era_fiscal_year(FiscalYear(1989)).as_deref(),
            Some("平成元年度")
        );
        assert_eq!(era_fiscal_year(FiscalYear(1988)), None);
    }
}
