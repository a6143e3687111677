//! Word lists for synthetic site names and addresses. Invented combinations
//! of common Chinese street names, host organisations and personal names.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::districts::District;

/// Common Chinese street names (some Shandong-flavoured).
pub(crate) const STREETS: [&str; 52] = [
    "人民路",
    "解放路",
    "建设路",
    "中山路",
    "和平路",
    "胜利路",
    "新华路",
    "文化路",
    "青年路",
    "工业路",
    "幸福路",
    "团结路",
    "光明路",
    "长江路",
    "黄河路",
    "泰山路",
    "北京路",
    "上海路",
    "东风路",
    "振兴路",
    "友谊路",
    "健康路",
    "学府路",
    "朝阳路",
    "迎宾路",
    "滨河路",
    "府前街",
    "花园路",
    "公园路",
    "站前路",
    "经十路",
    "泉城路",
    "舜华路",
    "山东路",
    "齐鲁大道",
    "世纪大道",
    "科技路",
    "创业路",
    "民生路",
    "兴业路",
    "发展大道",
    "环城路",
    "开元路",
    "银河路",
    "海滨路",
    "育才路",
    "新村路",
    "商业街",
    "顺河街",
    "北园大街",
    "人民大街",
    "工业南路",
];

/// Hosts of outdoor-worker stations. `{s}` is replaced by the street name;
/// hosts without it are preceded by the street.
const OUTDOOR_HOSTS: [&str; 22] = [
    "中国石化加油站",
    "中国石油加油站",
    "中国工商银行{s}支行",
    "中国建设银行{s}支行",
    "中国农业银行{s}支行",
    "中国银行{s}支行",
    "中国邮政储蓄银行{s}支行",
    "农商银行{s}支行",
    "顺丰速运{s}营业点",
    "美团外卖{s}站",
    "饿了么{s}配送站",
    "京东物流{s}营业部",
    "中通快递{s}网点",
    "社区党群服务中心",
    "环卫所",
    "公交场站",
    "中国移动营业厅",
    "邮政所",
    "供电所",
    "便民服务中心",
    "城管执法中队",
    "新时代文明实践站",
];

const MOTHER_HOSTS: [&str; 22] = [
    "人民医院",
    "第二人民医院",
    "中医医院",
    "妇幼保健院",
    "政务服务中心",
    "图书馆",
    "文化馆",
    "火车站",
    "汽车总站",
    "万达广场",
    "银座购物广场",
    "吾悦广场",
    "大润发超市",
    "中国工商银行{s}支行",
    "中国建设银行{s}支行",
    "{s}社区党群服务中心",
    "{s}街道办事处",
    "总工会",
    "税务局办税服务厅",
    "供电公司",
    "人力资源市场",
    "{co}",
];

const UNION_HOSTS: [&str; 12] = [
    "总工会",
    "职工服务中心",
    "{s}社区党群服务中心",
    "{co}",
    "供电公司",
    "公交公司",
    "环卫处",
    "中国工商银行{s}支行",
    "中国石化{s}加油站",
    "顺丰速运{s}营业点",
    "产业工人服务中心",
    "物流园",
];

const ZONES: [&str; 5] = [
    "高新区",
    "经济开发区",
    "综合保税区",
    "工业园区",
    "高新技术产业开发区",
];

const CO_PREFIXES: [&str; 16] = [
    "华兴", "金鼎", "宏达", "恒通", "瑞丰", "鑫源", "东方", "中联", "振华", "新华", "远航", "汇泉",
    "永盛", "嘉禾", "天成", "国泰",
];
const CO_TRADES: [&str; 14] = [
    "机械",
    "化工",
    "纺织",
    "食品",
    "电子",
    "物流",
    "建材",
    "汽车零部件",
    "钢铁",
    "制药",
    "轮胎",
    "重工",
    "电力设备",
    "新材料",
];
const CO_SUFFIXES: [&str; 3] = ["有限公司", "集团", "股份有限公司"];

const SURNAMES: [&str; 32] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
    "何", "郭", "马", "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "程", "曹", "袁",
];
const GIVEN: [&str; 40] = [
    "建", "国", "伟", "强", "磊", "军", "勇", "杰", "涛", "明", "超", "华", "平", "刚", "辉", "鹏",
    "峰", "亮", "红", "霞", "丽", "敏", "静", "燕", "芳", "娟", "玉", "春", "海", "东", "志", "文",
    "金", "成", "兵", "林", "波", "宁", "庆", "新",
];

const CORNERS: [&str; 4] = ["东北角", "东南角", "西北角", "西南角"];

pub(crate) fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len() as u32) as usize]
}

/// "济南市" → "济南"; empty for counties without a prefecture-level city.
fn city_short(d: &District) -> &str {
    d.city.strip_suffix('市').unwrap_or(&d.city)
}

fn company(rng: &mut ChaCha8Rng, d: &District) -> String {
    let prefix = if rng.random_range(0..3u32) == 0 && !city_short(d).is_empty() {
        city_short(d)
    } else {
        pick(rng, &CO_PREFIXES)
    };
    format!(
        "{prefix}{}{}",
        pick(rng, &CO_TRADES),
        pick(rng, &CO_SUFFIXES)
    )
}

fn person(rng: &mut ChaCha8Rng) -> String {
    let mut s = pick(rng, &SURNAMES).to_owned();
    for _ in 0..rng.random_range(1..=2u32) {
        s.push_str(pick(rng, &GIVEN));
    }
    s
}

/// Expands `{s}` (street) and `{co}` (a company); a host without `{s}` or
/// `{co}` gets the street in front when `street_first`.
fn host(
    rng: &mut ChaCha8Rng,
    d: &District,
    template: &str,
    street: &str,
    street_first: bool,
) -> String {
    if template.contains("{co}") {
        template.replace("{co}", &company(rng, d))
    } else if template.contains("{s}") {
        template.replace("{s}", street)
    } else if street_first {
        format!("{street}{template}")
    } else {
        template.to_owned()
    }
}

/// An outdoor station's name, e.g. "历下区泉城路中国石化加油站户外劳动者服务站点".
pub(crate) fn outdoor_name(rng: &mut ChaCha8Rng, d: &District, street: &str) -> String {
    let template = pick(rng, &OUTDOOR_HOSTS);
    let h = host(rng, d, template, street, true);
    let suffix = match rng.random_range(0..10u32) {
        0 => "户外劳动者服务站",
        1 => "爱心驿站户外劳动者服务站点",
        _ => "户外劳动者服务站点",
    };
    format!("{}{h}{suffix}", d.name)
}

/// A mother room's name, e.g. "槐荫区人民医院爱心妈妈小屋".
pub(crate) fn mother_name(rng: &mut ChaCha8Rng, d: &District, street: &str) -> String {
    let template = pick(rng, &MOTHER_HOSTS);
    let h = host(rng, d, template, street, false);
    if h.ends_with("公司") || h.ends_with("集团") {
        format!("{h}爱心妈妈小屋")
    } else {
        format!("{}{h}爱心妈妈小屋", d.name)
    }
}

/// A union station's name, e.g. "高新区工会驿站(舜华路)" or "历城区总工会工会驿站".
pub(crate) fn union_name(rng: &mut ChaCha8Rng, d: &District, street: &str) -> String {
    match rng.random_range(0..10u32) {
        0..=1 => {
            let city = if rng.random_range(0..2u32) == 0 {
                city_short(d)
            } else {
                ""
            };
            format!("{city}{}工会驿站({street})", pick(rng, &ZONES))
        }
        2..=3 => format!("{}工会驿站({street})", d.name),
        4 => format!("{}{street}街道工会驿站", d.name),
        _ => {
            let template = pick(rng, &UNION_HOSTS);
            let h = host(rng, d, template, street, false);
            format!("{}{h}工会驿站", d.name)
        }
    }
}

/// A studio's name, e.g. "王建国劳模创新工作室".
pub(crate) fn studio_name(rng: &mut ChaCha8Rng, d: &District) -> String {
    let p = person(rng);
    match rng.random_range(0..10u32) {
        0..=3 => format!("{p}劳模创新工作室"),
        4..=5 => format!("{p}技能大师工作室"),
        6..=7 => format!("{}{p}劳模工匠创新工作室", company(rng, d)),
        8 => format!("{p}工匠创新工作室"),
        _ => format!("{}{p}职工创新工作室", company(rng, d)),
    }
}

/// A street address, e.g. "山东省济南市历下区泉城路188号".
pub(crate) fn address(rng: &mut ChaCha8Rng, d: &District, street: &str) -> String {
    let prefix = d.address_prefix();
    let number = if rng.random_range(0..2u32) == 0 {
        rng.random_range(1..=60u32)
    } else {
        rng.random_range(1..=999u32)
    };
    match rng.random_range(0..20u32) {
        0..=14 => format!("{prefix}{street}{number}号"),
        15..=17 => {
            let mut other = pick(rng, &STREETS);
            while other == street {
                other = pick(rng, &STREETS);
            }
            let corner = pick(rng, &CORNERS);
            format!("{prefix}{street}与{other}交叉口{corner}")
        }
        _ => format!(
            "{prefix}{street}{number}号{}号楼",
            rng.random_range(1..=12u32)
        ),
    }
}
